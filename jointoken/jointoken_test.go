package jointoken

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTripAndCheck(t *testing.T) {
	tok, err := New(nil)
	require.NoError(t, err)
	s := tok.String()
	require.True(t, strings.HasPrefix(s, "rapjt."))
	back, err := Parse(s)
	require.NoError(t, err)
	require.Equal(t, tok, back)
	h := Hash(tok)
	require.Len(t, h, 32)
	require.NotContains(t, string(h), string(tok.Secret))
	require.True(t, Check(back, h))
	back.Secret[0] ^= 1
	require.False(t, Check(back, h))
}

func TestParseRefusesMalformed(t *testing.T) {
	tok, _ := New(nil)
	good := tok.String()
	for _, s := range []string{"", "rapjt", "rapjt..", good + "x", strings.Replace(good, "rapjt", "rapxx", 1),
		"rapjt.ZZZZZZZZZZZZZZZZ." + good[23:], "rapjt.0123456789ABCDEF." + good[23:], good[:len(good)-1] + "*"} {
		_, err := Parse(s)
		require.ErrorIs(t, err, ErrMalformed, "%q", s)
	}
}

func FuzzParse(f *testing.F) {
	tok, _ := New(nil)
	f.Add(tok.String())
	f.Add("rapjt.0000000000000000.")
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := Parse(s)
		if err == nil {
			require.Equal(t, tk, must(Parse(tk.String())))
		}
	})
}

func must(t Token, err error) Token {
	if err != nil {
		panic(err)
	}
	return t
}

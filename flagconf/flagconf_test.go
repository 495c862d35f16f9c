package flagconf

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type fixture struct {
	fs       *flag.FlagSet
	dir, lvl *string
	every    *time.Duration
	n        *int
	on       *bool
	caps     list
}

func newFixture() *fixture {
	f := &fixture{fs: flag.NewFlagSet("run", flag.ContinueOnError)}
	f.fs.SetOutput(new(bytes.Buffer))
	f.fs.String("config", "", "config file")
	f.dir = f.fs.String("data-dir", "", "")
	f.lvl = f.fs.String("log-level", "info", "")
	f.every = f.fs.Duration("heartbeat-every", time.Second, "")
	f.n = f.fs.Int("max-batch", 10, "")
	f.on = f.fs.Bool("no-mesh", false, "")
	f.fs.Var(&f.caps, "capability", "")
	return f
}

func opts(env map[string]string, files map[string]string, warn *bytes.Buffer) Options {
	return Options{EnvPrefix: "RAP_TEST_", ConfigFlag: "config", Warn: warn,
		Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			s, ok := files[p]
			if !ok {
				return nil, os.ErrNotExist
			}
			return []byte(s), nil
		},
		Legacy: func(name string) string {
			if name == "data-dir" {
				return "RAP_DATA_DIR"
			}
			return ""
		}}
}

// TestPrecedence: command line over environment over file; every type of
// value from the file; arrays for repeatable flags.
func TestPrecedence(t *testing.T) {
	f := newFixture()
	files := map[string]string{"/c.json": `{"data-dir":"/file","log-level":"debug","heartbeat-every":"5s","max-batch":1000000,"no-mesh":true,"capability":["a","b"]}`}
	env := map[string]string{"RAP_TEST_CONFIG": "/c.json", "RAP_TEST_LOG_LEVEL": "warn"}
	require.NoError(t, Load(f.fs, []string{"--data-dir", "/cli"}, opts(env, files, nil)))
	require.Equal(t, "/cli", *f.dir)
	require.Equal(t, "warn", *f.lvl)
	require.Equal(t, 5*time.Second, *f.every)
	require.Equal(t, 1000000, *f.n)
	require.True(t, *f.on)
	require.Equal(t, list{"a", "b"}, f.caps)
}

// TestRefusesMistakes: unknown keys and invalid values name the key or
// variable; nothing is silently ignored.
func TestRefusesMistakes(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		want string
	}{
		{`{"data-dir":"/x","heartbeat-evry":"5s"}`, nil, `config /c.json: unknown key "heartbeat-evry"`},
		{`{"heartbeat-every":"soon"}`, nil, `config /c.json: key "heartbeat-every": invalid value "soon"`},
		{`{"max-batch":1.5}`, nil, `config /c.json: key "max-batch": invalid value 1.5`},
		{`{"max-batch":{"a":1}}`, nil, `key "max-batch": invalid value {"a":1}: want a string, number or boolean`},
		{`[1,2]`, nil, "config /c.json: not a JSON object"},
		{`{}`, map[string]string{"RAP_TEST_MAX_BATCH": "many"}, `RAP_TEST_MAX_BATCH="many": invalid value for --max-batch`},
		{`{"config":"/other.json"}`, nil, `unknown key "config"`},
	} {
		f := newFixture()
		env := map[string]string{}
		for k, v := range tc.env {
			env[k] = v
		}
		err := Load(f.fs, []string{"--config", "/c.json"}, opts(env, map[string]string{"/c.json": tc.file}, nil))
		require.Error(t, err, tc.file)
		require.Contains(t, err.Error(), tc.want)
	}
	f := newFixture()
	err := Load(f.fs, []string{"--config", "/missing.json"}, opts(nil, nil, nil))
	require.ErrorContains(t, err, "config /missing.json")
}

// TestLegacyEnvironment: an old name still works and warns; the new name wins.
func TestLegacyEnvironment(t *testing.T) {
	var warn bytes.Buffer
	f := newFixture()
	require.NoError(t, Load(f.fs, nil, opts(map[string]string{"RAP_DATA_DIR": "/old"}, nil, &warn)))
	require.Equal(t, "/old", *f.dir)
	require.Contains(t, warn.String(), "RAP_DATA_DIR is deprecated, use RAP_TEST_DATA_DIR")
	warn.Reset()
	f = newFixture()
	require.NoError(t, Load(f.fs, nil, opts(map[string]string{"RAP_DATA_DIR": "/old", "RAP_TEST_DATA_DIR": "/new"}, nil, &warn)))
	require.Equal(t, "/new", *f.dir)
	require.Empty(t, warn.String())
	require.Equal(t, "RAP_AGENT_STATUS_SOCKET", EnvName("RAP_AGENT_", "status-socket"))
}

// TestStrictEnvironment: with StrictEnv a misspelt variable under the
// prefix is refused by name; other commands' names may be allowed.
func TestStrictEnvironment(t *testing.T) {
	env := map[string]string{"RAP_TEST_HEARTBEAT_EVRY": "5s", "RAP_TEST_TOKEN": "x", "OTHER": "1"}
	o := opts(env, nil, nil)
	o.StrictEnv = true
	o.Environ = func() []string {
		var l []string
		for k, v := range env {
			l = append(l, k+"="+v)
		}
		return l
	}
	o.AlsoKnown = []string{"token"}
	err := Load(newFixture().fs, nil, o)
	require.ErrorContains(t, err, "RAP_TEST_HEARTBEAT_EVRY: no such setting")
	delete(env, "RAP_TEST_HEARTBEAT_EVRY")
	require.NoError(t, Load(newFixture().fs, nil, o))
}

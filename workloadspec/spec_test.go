package workloadspec

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const sum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestFromConfigNative(t *testing.T) {
	s, err := FromConfig(json.RawMessage(`{"adapters":["ssh"],"workload":{"driver":"native","artifact":{"path":"/opt/x","sha256":"` + sum + `","version":"1.2"},
		"args":["-p","1"],"health":{"kind":"http","url":"http://127.0.0.1:1/healthz","interval":"200ms","failure_threshold":3},"stop_timeout":"3s",
		"restart":{"initial_backoff":"100ms","max_backoff":"2s","crash_loop_after":4}}}`))
	require.NoError(t, err)
	require.Equal(t, "1.2", s.Version())
	require.Equal(t, 3*time.Second, s.StopTimeout.D(0))
	require.Equal(t, 200*time.Millisecond, s.Health.Interval.D(0))
	require.Len(t, s.Hash(), 64)

	none, err := FromConfig(json.RawMessage(`{"adapters":["ssh"]}`))
	require.NoError(t, err)
	require.Nil(t, none)
}

func TestParseRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"no driver":        `{}`,
		"relative path":    `{"driver":"native","artifact":{"path":"x","sha256":"` + sum + `"}}`,
		"short hash":       `{"driver":"native","artifact":{"path":"/x","sha256":"abc"}}`,
		"image by tag":     `{"driver":"container","image":"busybox:latest"}`,
		"unknown field":    `{"driver":"container","image":"b@sha256:` + sum + `","privileged":true}`,
		"bad check":        `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"health":{"kind":"icmp"}}`,
		"bad duration":     `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"stop_timeout":"soon"}`,
		"host net native":  `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"host_network":true}`,
		"tiny memory":      `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"limits":{"memory_bytes":10}}`,
		"bad env":          `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"env":{"A=B":"c"}}`,
		"backoff inverted": `{"driver":"native","artifact":{"path":"/x","sha256":"` + sum + `"},"restart":{"initial_backoff":"5s","max_backoff":"1s"}}`,
	} {
		_, err := Parse(json.RawMessage(doc))
		var e *Error
		require.True(t, errors.As(err, &e), "%s: %v", name, err)
	}
	c, err := Parse(json.RawMessage(`{"driver":"container","image":"localhost/w@sha256:` + sum + `","health":{"kind":"tcp","address":"127.0.0.1:80"}}`))
	require.NoError(t, err)
	require.Equal(t, "sha256:"+sum, c.ImageDigest())
}

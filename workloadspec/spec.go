// Package workloadspec is the workload contract of a service assignment: the
// "workload" object inside a service's signed config (snapshot
// ServiceConfig.Config) that tells a node agent what to run (a native binary
// pinned by sha256, or an OCI image pinned by digest), with which arguments,
// environment, resource limits, health check, stop timeout and restart
// policy. The authority validates it when the owner sets the service; the
// agent parses it again from the verified snapshot before running anything.
package workloadspec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Driver kinds.
const (
	DriverNative    = "native"
	DriverContainer = "container"
)

// Health check kinds.
const (
	CheckHTTP = "http"
	CheckTCP  = "tcp"
	CheckExec = "exec"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("500ms", "2s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration must be a string such as \"2s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the duration, or def when it is zero.
func (d Duration) D(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Artifact is the binary of a native workload: an absolute path on the node
// and the sha256 it must have. Version is the artifact's release version
// (reported unless a version probe answers).
type Artifact struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Version string `json:"version,omitempty"`
}

// Limits are the workload's resource limits (0: none).
type Limits struct {
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	Pids        int64 `json:"pids,omitempty"`
	// CPUMillis is the CPU quota in thousandths of a core (1000 = one core).
	CPUMillis int64 `json:"cpu_millis,omitempty"`
}

// Health is the workload's health check.
type Health struct {
	Kind string `json:"kind"`
	// URL (http): the address is 127.0.0.1 or the container's; a 2xx
	// answer is healthy.
	URL string `json:"url,omitempty"`
	// Address (tcp): host:port that must accept a connection.
	Address string `json:"address,omitempty"`
	// Command (exec): run as the workload (same user, directory, or inside
	// the container); exit 0 is healthy.
	Command          []string `json:"command,omitempty"`
	Interval         Duration `json:"interval,omitempty"`
	Timeout          Duration `json:"timeout,omitempty"`
	FailureThreshold int      `json:"failure_threshold,omitempty"`
	// StartPeriod is how long failures do not count after a start.
	StartPeriod Duration `json:"start_period,omitempty"`
}

// Restart is the restart policy: exponential backoff from InitialBackoff,
// doubled per consecutive failure, capped at MaxBackoff, with jitter. A
// workload that failed CrashLoopAfter times in a row, each time within
// StableAfter of its start, is in a crash loop.
type Restart struct {
	InitialBackoff Duration `json:"initial_backoff,omitempty"`
	MaxBackoff     Duration `json:"max_backoff,omitempty"`
	CrashLoopAfter int      `json:"crash_loop_after,omitempty"`
	StableAfter    Duration `json:"stable_after,omitempty"`
}

// Spec is the workload contract of one service assignment.
type Spec struct {
	Driver string `json:"driver"`
	// Artifact (native) or Image (container, "name@sha256:<64 hex>").
	Artifact *Artifact `json:"artifact,omitempty"`
	Image    string    `json:"image,omitempty"`
	// ImageVersion is the release version of the image (reported).
	ImageVersion string            `json:"image_version,omitempty"`
	Args         []string          `json:"args,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Limits       Limits            `json:"limits,omitempty"`
	Health       *Health           `json:"health,omitempty"`
	StopTimeout  Duration          `json:"stop_timeout,omitempty"`
	Restart      Restart           `json:"restart,omitempty"`
	// HostNetwork (container only) runs in the host's network namespace; it
	// must be declared, never assumed.
	HostNetwork bool `json:"host_network,omitempty"`
	// Ports (container only, not with host_network) are published ports,
	// "HOST_IP:HOST_PORT:CONTAINER_PORT[/tcp|/udp]".
	Ports []string `json:"ports,omitempty"`
	// VersionProbe (native only) are arguments that make the binary print
	// its version (first line of output, 2 s at most).
	VersionProbe []string `json:"version_probe,omitempty"`
}

// Defaults of the restart policy and stop timeout.
const (
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultCrashLoopAfter = 5
	DefaultStableAfter    = 30 * time.Second
	DefaultStopTimeout    = 10 * time.Second
)

// NativeOnly reports whether a service type must run as a native process
// (the spec's "Node Runtime Expectations": VPN workloads own host routes and
// tun devices, which containers must not be privileged for).
func NativeOnly(serviceType string) bool {
	return serviceType == "vpn-exit" || serviceType == "vpn-connector"
}

// Error is a validation error: Field names the offending field.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string { return "workload." + e.Field + ": " + e.Message }

func errf(field, format string, a ...any) error {
	return &Error{Field: field, Message: fmt.Sprintf(format, a...)}
}

var (
	hexRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	imageRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:-]{0,254}@sha256:[0-9a-f]{64}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	portRE   = regexp.MustCompile(`^[0-9.]{7,15}:[0-9]{1,5}:[0-9]{1,5}(/tcp|/udp)?$`)
)

// FromConfig extracts the workload spec from a service config document. It
// returns (nil, nil) when the config has no "workload" object.
func FromConfig(cfg json.RawMessage) (*Spec, error) {
	if len(cfg) == 0 {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, errf("", "the service config is not a JSON object")
	}
	raw, ok := m["workload"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	return Parse(raw)
}

// Parse decodes and validates a workload spec (unknown fields refused).
func Parse(raw json.RawMessage) (*Spec, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, errf("", "%v", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate checks the spec.
func (s *Spec) Validate() error {
	switch s.Driver {
	case DriverNative:
		a := s.Artifact
		if a == nil {
			return errf("artifact", "a native workload needs artifact.path and artifact.sha256")
		}
		if !filepath.IsAbs(a.Path) || filepath.Clean(a.Path) != a.Path {
			return errf("artifact.path", "must be a clean absolute path")
		}
		if !hexRE.MatchString(a.SHA256) {
			return errf("artifact.sha256", "must be 64 lowercase hex digits")
		}
		if s.Image != "" || s.HostNetwork || len(s.Ports) > 0 {
			return errf("image", "image, host_network and ports are container fields")
		}
	case DriverContainer:
		if !imageRE.MatchString(s.Image) {
			return errf("image", "must name an image by digest: name@sha256:<64 hex>")
		}
		if s.Artifact != nil || len(s.VersionProbe) > 0 {
			return errf("artifact", "artifact and version_probe are native fields")
		}
		if s.HostNetwork && len(s.Ports) > 0 {
			return errf("ports", "a host-network container publishes no ports")
		}
		if len(s.Ports) > 32 {
			return errf("ports", "at most 32 ports")
		}
		for _, p := range s.Ports {
			if !portRE.MatchString(p) {
				return errf("ports", "%q is not HOST_IP:HOST_PORT:CONTAINER_PORT[/tcp|/udp]", p)
			}
		}
	default:
		return errf("driver", "must be native or container")
	}
	if len(s.Args) > 64 {
		return errf("args", "at most 64 arguments")
	}
	for _, a := range append(append([]string{}, s.Args...), s.VersionProbe...) {
		if len(a) > 4096 || strings.ContainsRune(a, 0) {
			return errf("args", "an argument is too long or holds a NUL")
		}
	}
	if len(s.Env) > 64 {
		return errf("env", "at most 64 variables")
	}
	for k, v := range s.Env {
		if !envKeyRE.MatchString(k) || len(v) > 4096 || strings.ContainsRune(v, 0) {
			return errf("env", "bad variable %q", k)
		}
	}
	if s.Limits.MemoryBytes < 0 || s.Limits.Pids < 0 || s.Limits.CPUMillis < 0 {
		return errf("limits", "limits must not be negative")
	}
	if s.Limits.MemoryBytes != 0 && s.Limits.MemoryBytes < 4<<20 {
		return errf("limits.memory_bytes", "at least 4 MiB")
	}
	if h := s.Health; h != nil {
		switch h.Kind {
		case CheckHTTP:
			u, err := url.Parse(h.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errf("health.url", "must be an http(s) URL")
			}
		case CheckTCP:
			if !strings.Contains(h.Address, ":") {
				return errf("health.address", "must be host:port")
			}
		case CheckExec:
			if len(h.Command) == 0 || len(h.Command) > 32 {
				return errf("health.command", "1-32 arguments")
			}
		default:
			return errf("health.kind", "must be http, tcp or exec")
		}
		if h.FailureThreshold < 0 || h.FailureThreshold > 100 {
			return errf("health.failure_threshold", "0-100")
		}
		if h.Interval != 0 && time.Duration(h.Interval) < 50*time.Millisecond {
			return errf("health.interval", "at least 50ms")
		}
	}
	r := s.Restart
	if r.InitialBackoff != 0 && time.Duration(r.InitialBackoff) < 10*time.Millisecond {
		return errf("restart.initial_backoff", "at least 10ms")
	}
	if r.MaxBackoff != 0 && r.MaxBackoff < r.InitialBackoff {
		return errf("restart.max_backoff", "must not be below initial_backoff")
	}
	if r.CrashLoopAfter < 0 || r.CrashLoopAfter > 1000 {
		return errf("restart.crash_loop_after", "0-1000")
	}
	if time.Duration(s.StopTimeout) > 10*time.Minute {
		return errf("stop_timeout", "at most 10m")
	}
	return nil
}

// Version is the release version the spec declares.
func (s *Spec) Version() string {
	if s.Artifact != nil {
		return s.Artifact.Version
	}
	return s.ImageVersion
}

// ImageDigest is the "sha256:<hex>" digest of a container spec's image.
func (s *Spec) ImageDigest() string {
	if i := strings.LastIndex(s.Image, "@"); i >= 0 {
		return s.Image[i+1:]
	}
	return ""
}

// Hash is a stable fingerprint of the spec: a changed spec restarts the
// workload.
func (s *Spec) Hash() string {
	b, _ := json.Marshal(s)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

package authority

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by every *ConfigError (errors.Is).
var ErrInvalidConfig = errors.New("authority: invalid config")

// ConfigError refuses a Config; Field names the offending field with its
// path from Config (e.g. "Heartbeats.LateAfter"), so that a command can map it
// back to the flag that set it.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("authority: invalid config: %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) hold.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// DefaultConfig returns a Config with every default filled in (a zero Config
// means the same: New fills zero fields with these values).
func DefaultConfig() Config {
	var c Config
	c.defaults()
	c.Heartbeats.defaults()
	c.Snapshots = c.Snapshots.withDefaults()
	return c
}

// Validate reports the first unusable field of c, as a *ConfigError naming
// it. Zero values mean defaults and are valid; negative durations and counts
// are not, nor are health thresholds out of order.
func (c Config) Validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"QuorumTimeout", c.QuorumTimeout}, {"NodeCertLifetime", c.NodeCertLifetime},
		{"JoinRequestTTL", c.JoinRequestTTL}, {"CALifetime", c.CALifetime},
		{"Admin.StepUpTTL", c.Admin.StepUpTTL}, {"Admin.SetupTTL", c.Admin.SetupTTL},
		{"Admin.DeviceTrustWindow", c.Admin.DeviceTrustWindow},
	} {
		if d.v < 0 {
			return configErr(d.field, "must not be negative (got %s)", d.v)
		}
	}
	if err := c.Heartbeats.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &ConfigError{Field: "Heartbeats." + ce.Field, Reason: ce.Reason}
		}
		return err
	}
	if err := c.GroupCommit.Validate(); err != nil {
		return err
	}
	if err := c.Snapshots.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &ConfigError{Field: "Snapshots." + ce.Field, Reason: ce.Reason}
		}
		return err
	}
	for _, sub := range []struct {
		name string
		err  error
	}{{"VPN", c.VPN.Validate()}, {"Releases", c.Releases.Validate()}, {"Rollouts", c.Rollouts.Validate()}, {"Orgs", c.Orgs.Validate()}} {
		if sub.err == nil {
			continue
		}
		var ce *ConfigError
		if errors.As(sub.err, &ce) {
			return &ConfigError{Field: sub.name + "." + ce.Field, Reason: ce.Reason}
		}
		return sub.err
	}
	if err := c.Audit.Validate(); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return &ConfigError{Field: "Audit." + ce.Field, Reason: ce.Reason}
		}
		return err
	}
	return nil
}

// Validate reports the first unusable field of c as a *ConfigError (Field
// relative to HeartbeatConfig). Zero values mean defaults.
func (c HeartbeatConfig) Validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"FlushInterval", c.FlushInterval}, {"LateAfter", c.LateAfter}, {"StaleAfter", c.StaleAfter},
		{"OfflineAfter", c.OfflineAfter}, {"SweepInterval", c.SweepInterval}, {"Retention", c.Retention},
		{"RetentionInterval", c.RetentionInterval}, {"AuthCacheTTL", c.AuthCacheTTL},
	} {
		if d.v < 0 {
			return configErr(d.field, "must not be negative (got %s)", d.v)
		}
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"MaxBatch", c.MaxBatch}, {"MaxPending", c.MaxPending}, {"RetentionBatch", c.RetentionBatch}, {"Flushers", c.Flushers}} {
		if n.v < 0 {
			return configErr(n.field, "must not be negative (got %d)", n.v)
		}
	}
	if c.Flushers > MaxHeartbeatFlushers {
		return configErr("Flushers", "must be at most %d (got %d)", MaxHeartbeatFlushers, c.Flushers)
	}
	c.defaults()
	switch {
	case c.LateAfter >= c.StaleAfter:
		return configErr("LateAfter", "must be below StaleAfter (%s >= %s)", c.LateAfter, c.StaleAfter)
	case c.StaleAfter >= c.OfflineAfter:
		return configErr("StaleAfter", "must be below OfflineAfter (%s >= %s)", c.StaleAfter, c.OfflineAfter)
	case c.MaxBatch > c.MaxPending:
		return configErr("MaxBatch", "must not exceed MaxPending (%d > %d)", c.MaxBatch, c.MaxPending)
	}
	return nil
}

// Validate reports the first unusable field of o as a *ConfigError (Field
// relative to SnapshotOptions). Zero values mean defaults.
func (o SnapshotOptions) Validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"TTL", o.TTL}, {"MaxLongPoll", o.MaxLongPoll}, {"DirtyPoll", o.DirtyPoll}, {"FullPass", o.FullPass}, {"ChangeWait", o.ChangeWait}} {
		if d.v < 0 {
			return configErr(d.field, "must not be negative (got %s)", d.v)
		}
	}
	if o.DirtyShare < 0 || o.DirtyShare > 1 {
		return configErr("DirtyShare", "must be within 0 (the default, 0.5) and 1 (got %g)", o.DirtyShare)
	}
	if o.CommitPart < 0 {
		return configErr("CommitPart", "must not be negative (got %d)", o.CommitPart)
	}
	if o.StorageFanout < 0 {
		return configErr("StorageFanout", "must not be negative (got %d)", o.StorageFanout)
	}
	if err := o.Builder.Validate(); err != nil {
		return configErr("Builder", "%v", err)
	}
	return nil
}

package main

// Connection settings: flags > environment (RAPCTL_…) > the config file.
// The file refuses unknown keys; the old RAP_SERVERS / RAP_TOKEN / RAP_CA_PIN
// names still work with a deprecation warning.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

type settings struct {
	Servers []string `json:"servers"`
	Token   string   `json:"token"`
	CAPin   string   `json:"ca_pin"`
}

func configPath() string {
	if p := os.Getenv("RAPCTL_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "rapctl", "config.json")
}

// envNames maps each setting to its environment variable and the
// deprecated name it replaces.
var envNames = []struct{ name, old string }{
	{"RAPCTL_SERVERS", "RAP_SERVERS"},
	{"RAPCTL_TOKEN", "RAP_TOKEN"},
	{"RAPCTL_CA_PIN", "RAP_CA_PIN"},
}

// readSettingsFile reads the config file strictly: an unknown key or a
// malformed value is an error naming the file and the key.
func readSettingsFile(path string) (settings, error) {
	var s settings
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return s, fmt.Errorf("config %s: key %q: expected %s", path, te.Field, te.Type)
		}
		if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
			return s, fmt.Errorf("config %s: unknown key %s (known: servers, token, ca_pin)", path, strings.TrimPrefix(msg, "json: unknown field "))
		}
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	return s, nil
}

// loadSettingsChecked applies the environment over the file; warnings (a
// deprecated variable) go to stderr, a broken file is returned as an error
// that commands needing no connection (version, config set, help) ignore.
func loadSettingsChecked(stderr io.Writer) (settings, error) {
	s, err := readSettingsFile(configPath())
	for i, e := range envNames {
		v := os.Getenv(e.name)
		if v == "" {
			if v = os.Getenv(e.old); v != "" && stderr != nil {
				fmt.Fprintf(stderr, "rapctl: warning: %s is deprecated, use %s\n", e.old, e.name)
			}
		}
		if v == "" {
			continue
		}
		switch i {
		case 0:
			s.Servers = strings.Split(v, ",")
		case 1:
			s.Token = v
		case 2:
			s.CAPin = v
		}
	}
	if err != nil {
		err = usageError{err}
	}
	return s, err
}

// loadSettings is loadSettingsChecked without warnings or errors.
func loadSettings() settings {
	s, _ := loadSettingsChecked(nil)
	return s
}

func saveSettings(s settings) (string, error) {
	p := configPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return p, err
	}
	data, _ := json.MarshalIndent(s, "", "  ")
	return p, os.WriteFile(p, data, 0o600)
}

// configCommand is `rapctl config set|show`.
func configCommand(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{Use: "config", Short: "save or show connection settings", Args: cobra.NoArgs,
		Example: "  rapctl --server 10.0.0.1:7443 --token \"$T\" --ca-pin sha256:… config set\n  rapctl config show",
		RunE: func(c *cobra.Command, _ []string) error { return usagef("config needs set or show") }}
	c.AddCommand(&cobra.Command{
		Use:   "set",
		Short: "save --server, --token and --ca-pin in the config file (mode 0600)",
		Long:  "Save the connection flags given on this command line in the config file ($RAPCTL_CONFIG or ~/.config/rapctl/config.json, mode 0600).",
		Example: `  rapctl --server 10.0.0.1:7443,10.0.0.2:7443 --token "$T" --ca-pin sha256:… config set
  rapctl config set --server 10.0.0.3:7443`,
		Args: cobra.NoArgs,
		// A broken file is what `config set` repairs.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(c *cobra.Command, _ []string) error {
			s := settings{Token: g.token, CAPin: g.pin}
			if g.servers != "" {
				s.Servers = strings.Split(g.servers, ",")
			}
			p, err := saveSettings(s)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, "wrote", p)
			return err
		},
	})
	c.AddCommand(&cobra.Command{
		Use:     "show",
		Short:   "show the effective connection settings (token shortened)",
		Example: "  rapctl config show",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s := settings{Token: g.token, CAPin: g.pin}
			if g.servers != "" {
				s.Servers = strings.Split(g.servers, ",")
			}
			if s.Token != "" {
				s.Token = s.Token[:min(len(s.Token), 22)] + "…"
			}
			if output == "yaml" {
				return writeYAML(stdout, map[string]any{"servers": s.Servers, "token": s.Token, "ca_pin": s.CAPin})
			}
			return json.NewEncoder(stdout).Encode(s)
		},
	})
	return c
}

package main

// Connection settings: flags > environment (RAPCTL_…) > the config file,
// loaded by flagconf like the other binaries' settings. The file refuses
// unknown keys; the old RAP_SERVERS / RAP_TOKEN / RAP_CA_PIN names still work
// with a deprecation warning.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rap-fabric/core/flagconf"
)

type settings struct {
	Servers []string `json:"servers"`
	Token   string   `json:"token"`
	CAPin   string   `json:"ca_pin"`
}

// configFlag is --config FILE of this invocation (read before the settings).
var configFlag string

func configPath() string {
	if configFlag != "" {
		return configFlag
	}
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

// localConfigCommands have a --config flag of their own (a service's
// configuration), which shadows the global settings-file flag.
var localConfigCommands = [][]string{{"service", "set"}}

// scanConfigFlag finds --config FILE (or --config=FILE) in args: the file
// must be known before the other flags get their defaults from it. A command
// with its own --config (localConfigCommands) keeps it; its settings file
// comes from $RAPCTL_CONFIG or the default path.
func scanConfigFlag(args []string) string {
	for _, c := range localConfigCommands {
		for i := 0; i+len(c) <= len(args); i++ {
			if slices.Equal(args[i:i+len(c)], c) {
				return ""
			}
		}
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// serverList collects servers from a comma-separated value or a JSON list.
type serverList []string

func (l *serverList) String() string { return strings.Join(*l, ",") }
func (l *serverList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// loadSettingsChecked reads the settings with the loader the other
// binaries use (flagconf): environment (RAPCTL_…) over the config file,
// whose unknown keys are errors. Command-line flags are applied over this by
// cobra. Warnings (a deprecated variable) go to stderr; a broken file is a
// usage error that commands needing no connection (config set) ignore.
func loadSettingsChecked(stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("rapctl config", flag.ContinueOnError)
	var servers serverList
	fs.Var(&servers, "servers", "authority API addresses")
	token := fs.String("token", "", "API token")
	pin := fs.String("ca-pin", "", "platform CA pin")
	legacy := map[string]string{}
	for _, e := range envNames {
		legacy[strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.name, "RAPCTL_"), "_", "-"))] = e.old
	}
	err := flagconf.Load(fs, nil, flagconf.Options{EnvPrefix: "RAPCTL_", ConfigPath: configPath(), Warn: prefixed{stderr},
		Legacy: func(name string) string { return legacy[name] }})
	s := settings{Servers: servers, Token: *token, CAPin: *pin}
	if err != nil {
		err = usageError{err}
	}
	return s, err
}

// prefixed writes warnings as "rapctl: …" (nil: discarded).
type prefixed struct{ w io.Writer }

func (p prefixed) Write(b []byte) (int, error) {
	if p.w == nil {
		return len(b), nil
	}
	if _, err := io.WriteString(p.w, "rapctl: "); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// loadSettings is loadSettingsChecked without warnings or errors.
func loadSettings() settings {
	s, _ := loadSettingsChecked(nil)
	return s
}

// readSettingsFile reads the config file alone (strictly).
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
		return s, fmt.Errorf("config %s: %w", path, err)
	}
	return s, nil
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
		RunE:    func(c *cobra.Command, _ []string) error { return usagef("config needs set or show") }}
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

// Package flagconf is the one settings loader of the RAP binaries: every
// setting is a flag, and a flag's value comes from, in decreasing priority,
// the command line, the environment (a per-binary prefix plus the flag name
// in upper case with '-' as '_', e.g. RAP_AUTHORITY_DATA_DIR) and a JSON
// config file whose keys are flag names.
//
// Mistakes are refused, naming the key: an unknown key in the file, a value
// a flag cannot take (from the file or the environment). Old environment
// names still work with a deprecation warning. File keys may use '_' for
// '-' ("ca_pin" for --ca-pin).
package flagconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Options configures Load.
type Options struct {
	// EnvPrefix is the binary's environment namespace, e.g. "RAP_AUTHORITY_".
	EnvPrefix string
	// ConfigFlag names the flag holding the config file path ("" for none);
	// it may itself come from the environment.
	ConfigFlag string
	// ConfigPath is the config file when there is no ConfigFlag (or it is
	// empty); a missing ConfigPath file is no error (it is optional).
	ConfigPath string
	// Legacy returns a deprecated environment name for a flag ("" for none).
	Legacy func(flagName string) string
	// Getenv reads the environment (default os.LookupEnv).
	Getenv func(string) (string, bool)
	// ReadFile reads the config file (default os.ReadFile).
	ReadFile func(string) ([]byte, error)
	// Warn receives deprecation warnings (nil: discarded).
	Warn io.Writer
	// StrictEnv refuses a variable under EnvPrefix that names no flag of fs
	// (nor one of AlsoKnown): a typo in an environment file is an error.
	StrictEnv bool
	// AlsoKnown are flag names of other commands of the binary whose
	// variables may share the environment.
	AlsoKnown []string
	// Environ lists the environment for StrictEnv (default os.Environ).
	Environ func() []string
}

// EnvName is the environment variable of flag name under prefix.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Load parses args into fs, then fills every flag not given on the command
// line from the environment or, failing that, from the config file.
func Load(fs *flag.FlagSet, args []string, o Options) error {
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })
	if o.StrictEnv {
		if err := checkEnv(fs, o); err != nil {
			return err
		}
	}

	env := func(name string) (string, string, bool) {
		n := EnvName(o.EnvPrefix, name)
		if v, ok := o.Getenv(n); ok && v != "" {
			return n, v, true
		}
		if o.Legacy != nil {
			if old := o.Legacy(name); old != "" {
				if v, ok := o.Getenv(old); ok && v != "" {
					if o.Warn != nil {
						fmt.Fprintf(o.Warn, "warning: %s is deprecated, use %s\n", old, n)
					}
					return old, v, true
				}
			}
		}
		return "", "", false
	}

	// The config file path first: it decides which keys the file offers.
	var file map[string]json.RawMessage
	var path string
	if o.ConfigFlag != "" {
		f := fs.Lookup(o.ConfigFlag)
		if f == nil {
			return fmt.Errorf("flagconf: no flag --%s", o.ConfigFlag)
		}
		if !onCLI[o.ConfigFlag] {
			if n, v, ok := env(o.ConfigFlag); ok {
				if err := f.Value.Set(v); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
			}
		}
		path = f.Value.String()
	}
	if path != "" {
		var err error
		if file, err = readFile(fs, o, path); err != nil {
			return err
		}
	} else if o.ConfigPath != "" {
		path = o.ConfigPath
		var err error
		if file, err = readFile(fs, o, path); errors.Is(err, os.ErrNotExist) {
			file = nil
		} else if err != nil {
			return err
		}
	}

	var ferr error
	fs.VisitAll(func(f *flag.Flag) {
		if ferr != nil || onCLI[f.Name] || f.Name == o.ConfigFlag {
			return
		}
		if n, v, ok := env(f.Name); ok {
			if err := f.Value.Set(v); err != nil {
				ferr = fmt.Errorf("%s=%q: invalid value for --%s: %w", n, v, f.Name, err)
			}
			return
		}
		if raw, ok := file[f.Name]; ok {
			if err := setFromJSON(f, raw); err != nil {
				ferr = fmt.Errorf("config %s: key %q: invalid value %s: %w", path, f.Name, strings.TrimSpace(string(raw)), err)
			}
		}
	})
	return ferr
}

// checkEnv refuses variables under the prefix that name no known flag.
func checkEnv(fs *flag.FlagSet, o Options) error {
	environ := o.Environ
	if environ == nil {
		environ = os.Environ
	}
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { known[EnvName(o.EnvPrefix, f.Name)] = true })
	for _, n := range o.AlsoKnown {
		known[EnvName(o.EnvPrefix, n)] = true
	}
	var unknown []string
	for _, kv := range environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, o.EnvPrefix) && !known[k] && v != "" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s: no such setting (variables are %s + a flag name of %s in upper case)", unknown[0], o.EnvPrefix, fs.Name())
	}
	return nil
}

// readFile reads the JSON object at path; every key must name a flag.
func readFile(fs *flag.FlagSet, o Options, path string) (map[string]json.RawMessage, error) {
	data, err := o.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config %s: not a JSON object of settings: %w", path, err)
	}
	// Keys are flag names; "ca_pin" is accepted for "ca-pin".
	m := make(map[string]json.RawMessage, len(raw))
	var unknown []string
	for k, v := range raw {
		name := strings.ReplaceAll(k, "_", "-")
		if fs.Lookup(name) == nil || name == o.ConfigFlag {
			unknown = append(unknown, k)
		}
		m[name] = v
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("config %s: unknown key %q (keys are the flag names of %s)", path, unknown[0], fs.Name())
	}
	return m, nil
}

// setFromJSON sets f from a JSON string, number, boolean or array (one Set
// per element, for repeatable flags).
func setFromJSON(f *flag.Flag, raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	set := func(x any) error {
		switch y := x.(type) {
		case string:
			return f.Value.Set(y)
		case json.Number:
			return f.Value.Set(y.String())
		case bool:
			return f.Value.Set(fmt.Sprint(y))
		case nil:
			return errors.New("null is not a value")
		default:
			return fmt.Errorf("want a string, number or boolean, not %T", x)
		}
	}
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if err := set(x); err != nil {
				return err
			}
		}
		return nil
	}
	return set(v)
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/flagconf"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/migrations"
	"github.com/rap-fabric/core/store"
)

// bootstrapOwner implements `rap-authority bootstrap-owner`: it creates the
// first platform owner and prints a one-time setup secret, with which the owner
// sets a password and enrolls TOTP (console /console/setup). It refuses once an
// owner exists. With --demo-password (local demos only) it also sets the
// password, enrolls TOTP and prints the TOTP secret.
func bootstrapOwner(args []string) error {
	fs := flag.NewFlagSet("bootstrap-owner", flag.ContinueOnError)
	dbURL := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	name := fs.String("name", "owner", "user name of the first platform owner")
	kekFile := fs.String("kek-file", "", "the authorities' key-encryption key file (seals TOTP secrets; must match theirs)")
	demoPassword := fs.String("demo-password", "", "LOCAL DEMO ONLY: set this password, enroll TOTP and print its secret")
	console := fs.String("console-url", "", "console address to print (e.g. https://127.0.0.1:8443/console/)")
	cfgFile := fs.String("config", "", "the authority's JSON config file (of run): database-url and kek-file are read from it unless a flag or the environment gives them")
	// The run config holds keys this command has no flag for: it is read
	// below, not by the loader (which refuses unknown keys).
	if err := flagconf.Load(fs, args, flagconf.Options{EnvPrefix: "RAP_AUTHORITY_", Warn: warnWriter{},
		Legacy: func(name string) string { return flagconf.EnvName("RAP_", name) }}); err != nil {
		return err
	}
	if *cfgFile != "" {
		if err := fromConfigFile(*cfgFile, map[string]*string{"database-url": dbURL, "kek-file": kekFile}, givenOutsideFile(fs)); err != nil {
			return err
		}
	}
	if *dbURL == "" {
		return errors.New("--database-url is required (or RAP_AUTHORITY_DATABASE_URL)")
	}
	var sealer fsm.Sealer = fsm.NoopSealer{}
	if *kekFile != "" {
		data, err := os.ReadFile(*kekFile)
		if err != nil {
			return err
		}
		kek, err := hex.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(kek) != 32 {
			return errors.New("--kek-file must hold 64 hex characters (32 bytes)")
		}
		if sealer, err = fsm.NewAESGCMSealer(kek, nil); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if _, err := migrations.ApplyURL(ctx, *dbURL); err != nil {
		return err
	}
	db, err := store.Open(ctx, *dbURL, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := authority.New(authority.Config{Sealer: sealer}, nil, nil, db)
	if err != nil {
		return err
	}
	u, secret, err := a.Admin().BootstrapOwner(ctx, *name)
	if err != nil {
		return err
	}
	url := *console
	if url == "" {
		url = "https://<authority api address>/console/"
	}
	fmt.Printf("platform owner %q created (id %s)\n", u.Name, u.ID)
	if *demoPassword == "" {
		fmt.Printf("one-time setup secret (valid 72 h, shown once):\n  %s\n", secret)
		fmt.Printf("finish the setup (password + TOTP) at %ssetup\n", strings.TrimSuffix(url, "setup"))
		return nil
	}
	totp, err := a.Admin().DemoEnroll(ctx, *name, *demoPassword)
	if err != nil {
		return err
	}
	fmt.Printf("LOCAL DEMO ONLY — password and TOTP set without the setup flow:\n")
	fmt.Printf("  console:     %s\n  user:        %s\n  password:    %s\n  TOTP secret: %s\n", url, u.Name, *demoPassword, totp)
	return nil
}

// givenOutsideFile names the flags of fs set on the command line or by an
// environment variable (RAP_AUTHORITY_…, or the deprecated RAP_…).
func givenOutsideFile(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		for _, n := range []string{flagconf.EnvName("RAP_AUTHORITY_", f.Name), flagconf.EnvName("RAP_", f.Name)} {
			if os.Getenv(n) != "" {
				set[f.Name] = true
			}
		}
	})
	return set
}

// fromConfigFile sets each setting in vals that no flag or environment
// variable set (set, from givenOutsideFile) from the JSON
// config file of `rap-authority run --config` (keys are flag names), with the
// priority of run: flags, then the environment, then the file.
func fromConfigFile(path string, vals map[string]*string, set map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var file map[string]any
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for k, p := range vals {
		if v, ok := file[k]; ok && !set[k] {
			*p = fmt.Sprint(v)
		}
	}
	return nil
}

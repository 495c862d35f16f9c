package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/rap-fabric/core/authority"
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
	if err := loadFlags(fs, args); err != nil {
		return err
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

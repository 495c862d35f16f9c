package main

// Platform admin login for the CLI: `rapctl login` (password + TOTP) stores a
// session token in the rapctl config file; later commands send it as a bearer
// credential. High-risk commands get their step-up by themselves (stepup.go:
// a fresh TOTP code bound to that one request, asked on step_up_required);
// `rapctl step-up METHOD PATH` still obtains a grant ahead of time.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/rap-fabric/core/apiclient"
)

// globalConn returns the connection settings of this invocation.
func globalConn() (servers []string, pin string) {
	if g.servers != "" {
		servers = strings.Split(g.servers, ",")
	}
	return servers, g.pin
}

// stdin is read through one buffered reader so that piped answers (user,
// password, code on separate lines) are not lost between prompts.
var (
	stdinFile   = os.Stdin
	stdinReader *bufio.Reader
)

func readLine(prompt string) (string, error) {
	fmt.Fprint(cliErr, prompt)
	if stdinReader == nil {
		stdinReader = bufio.NewReader(stdinFile)
	}
	line, err := stdinReader.ReadString('\n')
	if err != nil && line == "" {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("no answer to %q on standard input (end of input)", strings.TrimSuffix(prompt, ": "))
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// readSecret prompts without echo on a terminal; from a pipe it reads a line.
func readSecret(prompt string) (string, error) {
	// On a terminal nothing is buffered ahead (a terminal hands over a line
	// at a time), so the reader used for earlier prompts holds nothing.
	if fd := int(stdinFile.Fd()); term.IsTerminal(fd) && (stdinReader == nil || stdinReader.Buffered() == 0) {
		fmt.Fprint(cliErr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cliErr)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return readLine(prompt)
}

type loginAnswer struct {
	SessionToken string    `json:"session_token"`
	ExpiresAt    time.Time `json:"expires_at"`
	User         struct {
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"user"`
}

// doLogin logs in and saves the session token in the config file.
func doLogin(user, password, totp, recovery string) (loginAnswer, error) {
	var out loginAnswer
	servers, pin := globalConn()
	if len(servers) == 0 {
		return out, usagef("no authority address: use --server, RAPCTL_SERVERS or `rapctl config set`")
	}
	c, err := apiclient.New(apiclient.Options{Servers: servers, CAPin: pin, Timeout: 15 * time.Second})
	if err != nil {
		return out, err
	}
	defer c.Close()
	body := map[string]any{"username": user, "password": password, "token": true}
	if totp != "" {
		body["totp_code"] = totp
	}
	if recovery != "" {
		body["recovery_code"] = recovery
	}
	if err := c.Do(context.Background(), http.MethodPost, "/v1/auth/login", body, &out, nil); err != nil {
		return out, err
	}
	s, _ := readSettingsFile(configPath())
	s.Servers, s.CAPin, s.Token = servers, pin, out.SessionToken
	g.token = out.SessionToken
	_, err = saveSettings(s)
	return out, err
}

func loginFlags(fs *flag.FlagSet) builder {
	user := fs.String("user", envOr("RAPCTL_USER", os.Getenv("RAP_USER")), "user name (env RAPCTL_USER)")
	pwFile := fs.String("password-file", "", "read the password from this file (default: RAPCTL_PASSWORD or a prompt without echo)")
	totp := fs.String("totp", "", "TOTP code (default: a prompt)")
	recovery := fs.String("recovery-code", "", "a recovery code instead of TOTP")
	return func() (string, string, any, error) {
		u := *user
		var err error
		if u == "" {
			if u, err = readLine("User: "); err != nil {
				return "", "", nil, err
			}
		}
		pw := envOr("RAPCTL_PASSWORD", os.Getenv("RAP_PASSWORD"))
		if *pwFile != "" {
			b, err := os.ReadFile(*pwFile)
			if err != nil {
				return "", "", nil, err
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		if pw == "" {
			if pw, err = readSecret("Password: "); err != nil {
				return "", "", nil, err
			}
		}
		code := *totp
		if code == "" && *recovery == "" {
			if code, err = readLine("Authenticator code: "); err != nil {
				return "", "", nil, err
			}
		}
		out, err := doLogin(u, pw, code, *recovery)
		if err != nil {
			return "", "", nil, err
		}
		fmt.Fprintf(cliOut, "logged in as %s (%s); session until %s saved to %s\n", out.User.Name, out.User.Role, out.ExpiresAt.Format(time.RFC3339), configPath())
		return http.MethodGet, "/v1/authority/status", nil, nil
	}
}

func stepUpFlags(fs *flag.FlagSet) builder {
	totp := fs.String("totp", "", "a fresh TOTP code (default: a prompt)")
	return func() (string, string, any, error) {
		if len(positional) < 2 {
			return "", "", nil, errArgs("METHOD PATH")
		}
		code := *totp
		var err error
		if code == "" {
			if code, err = readLine("Authenticator code: "); err != nil {
				return "", "", nil, err
			}
		}
		return http.MethodPost, "/v1/auth/step-up", map[string]any{"method": strings.ToUpper(positional[0]), "path": positional[1], "totp_code": code}, nil
	}
}

func createUserFlags(fs *flag.FlagSet) builder {
	role := fs.String("role", "platform_admin", "platform_admin or platform_owner")
	return func() (string, string, any, error) {
		if len(positional) < 1 {
			return "", "", nil, errArgs("NAME")
		}
		return http.MethodPost, "/v1/admin/users", map[string]any{"name": positional[0], "role": *role}, nil
	}
}

// adminCommands are appended to commands (commands.go).
var adminCommands = []cmd{
	{path: "login", help: "log in with password + TOTP and save the session token (--user, --password-file, --totp)", flags: loginFlags,
		table: []string{"node_id", "state", "leader_id", "quorum"}, single: true},
	{path: "logout", help: "end the CLI session", flags: noFlags(func() (string, string, any, error) { return http.MethodPost, "/v1/auth/logout", map[string]any{}, nil })},
	{path: "whoami", help: "the session's account, limits and recovery codes left", flags: noFlags(get("/v1/auth/me"))},
	{path: "step-up", args: "METHOD PATH", help: "confirm one high-risk request with a fresh TOTP code (then run it within 5 min)", flags: stepUpFlags,
		table: []string{"action", "method", "path", "expires_at"}, single: true},
	{path: "user list", help: "list platform accounts", flags: listFlags("/v1/admin/users"), table: []string{"id", "name", "role", "mfa_enrolled", "setup_pending", "disabled"}},
	{path: "user create", args: "NAME", help: "create a platform account (owners; step-up) and print its one-time setup secret", flags: createUserFlags},
	{path: "user disable", args: "ID", help: "disable a platform account (owners; step-up)", flags: withArgs(http.MethodPost, "/v1/admin/users/{id}/disable", "id"), table: []string{"id", "name", "disabled"}, single: true},
	{path: "user enable", args: "ID", help: "re-enable a platform account (owners; step-up)", flags: withArgs(http.MethodPost, "/v1/admin/users/{id}/enable", "id"), table: []string{"id", "name", "disabled"}, single: true},
}

func init() { commands = append(commands, adminCommands...) }

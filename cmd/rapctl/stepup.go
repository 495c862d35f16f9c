package main

// Automatic step-up: a high-risk command answered step_up_required asks for a
// fresh authenticator code (the global --totp flag, or a prompt when stdin is
// a terminal), requests a grant for exactly that method and path, and is sent
// once more. The grant is bound to the session, the action and the concrete
// path, and the server spends it only on the leader (a follower answers
// not_leader first and the client follows), so one code is one action.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/term"

	"github.com/rap-fabric/core/apiclient"
)

// errStepUpNeedsCode is returned when step-up is required but no code can be
// had: no --totp and no terminal to ask on.
var errStepUpNeedsCode = errors.New("this command needs a fresh authenticator code: pass --totp CODE or run it on a terminal")

// codeSource yields one authenticator code for method+path.
type codeSource func(method, path string) (string, error)

// stdinIsTerminal reports whether standard input is a character device (a
// terminal), where a prompt can be answered.
func stdinIsTerminal() bool { return term.IsTerminal(int(stdinFile.Fd())) }

// totpSource returns the code source of the command line: the --totp value,
// else (on a terminal only) an answer to a prompt read with read, else
// errStepUpNeedsCode.
func totpSource(flagCode string, read func(prompt string) (string, error), terminal bool) codeSource {
	return func(method, path string) (string, error) {
		if c := strings.TrimSpace(flagCode); c != "" {
			return c, nil
		}
		if !terminal {
			return "", errStepUpNeedsCode
		}
		code, err := read(method + " " + path + " is a high-risk action. Authenticator code: ")
		if err != nil {
			return "", fmt.Errorf("reading the authenticator code: %w", err)
		}
		if code == "" {
			return "", errStepUpNeedsCode
		}
		return code, nil
	}
}

// requestPath is the path a step-up grant is bound to: the request path
// without its query, unescaped as the server's router sees it.
func requestPath(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		return p
	}
	return u.Path
}

// doWithStepUp sends the request; on step_up_required it obtains a grant for
// exactly this method and path with a code from codes and sends the request
// once more. Any other answer is returned as is.
func doWithStepUp(ctx context.Context, c *apiclient.Client, method, path string, body, out any, headers map[string]string, codes codeSource) error {
	err := c.Do(ctx, method, path, body, out, headers)
	var ae *apiclient.Error
	if !errors.As(err, &ae) || ae.Code != "step_up_required" {
		return err
	}
	code, cerr := codes(method, requestPath(path))
	if cerr != nil {
		// Keep the API error (its code decides the exit status), with the
		// reason no code could be had.
		e := *ae
		e.Message += "; " + cerr.Error()
		return &e
	}
	grant := map[string]any{"method": method, "path": requestPath(path), "totp_code": code}
	if err := c.Do(ctx, http.MethodPost, "/v1/auth/step-up", grant, nil, nil); err != nil {
		return fmt.Errorf("step-up for %s %s: %w", method, requestPath(path), err)
	}
	return c.Do(ctx, method, path, body, out, headers)
}

package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestTOTPSource(t *testing.T) {
	var prompts []string
	answer := func(a string, err error) func(string) (string, error) {
		return func(p string) (string, error) { prompts = append(prompts, p); return a, err }
	}
	// The flag wins; nothing is asked.
	code, err := totpSource(" 123456 ", answer("999999", nil), true)("POST", "/v1/join-tokens")
	if err != nil || code != "123456" || len(prompts) != 0 {
		t.Fatalf("flag: %q %v %q", code, err, prompts)
	}
	// On a terminal: a prompt naming the request.
	code, err = totpSource("", answer("654321", nil), true)("POST", "/v1/join-tokens")
	if err != nil || code != "654321" {
		t.Fatalf("prompt: %q %v", code, err)
	}
	if len(prompts) != 1 || !strings.Contains(prompts[0], "POST /v1/join-tokens") {
		t.Fatalf("prompt does not name the request: %q", prompts)
	}
	// Not a terminal and no flag: refused, nothing asked.
	_, err = totpSource("", answer("111111", nil), false)("POST", "/v1/join-tokens")
	if !errors.Is(err, errStepUpNeedsCode) || len(prompts) != 1 {
		t.Fatalf("no terminal: %v %q", err, prompts)
	}
	// A terminal that closes or an empty answer: an error, not an empty code.
	if _, err = totpSource("", answer("", io.EOF), true)("POST", "/x"); err == nil {
		t.Fatal("end of input accepted")
	}
	if _, err = totpSource("", answer("", nil), true)("POST", "/x"); !errors.Is(err, errStepUpNeedsCode) {
		t.Fatalf("empty answer: %v", err)
	}
}

func TestRequestPath(t *testing.T) {
	for in, want := range map[string]string{
		"/v1/join-requests/a%2Fb/approve": "/v1/join-requests/a/b/approve",
		"/v1/nodes?cluster=x":             "/v1/nodes",
		"/v1/join-tokens":                 "/v1/join-tokens",
	} {
		if got := requestPath(in); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", in, got, want)
		}
	}
}

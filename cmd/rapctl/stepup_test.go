package main

import (
	"errors"
	"strings"
	"testing"
)

func TestTOTPSource(t *testing.T) {
	// The flag wins; no prompt is written.
	var prompt strings.Builder
	code, err := totpSource(" 123456 ", strings.NewReader("999999\n"), &prompt, true)("POST", "/v1/join-tokens")
	if err != nil || code != "123456" || prompt.Len() != 0 {
		t.Fatalf("flag: %q %v %q", code, err, prompt.String())
	}
	// On a terminal: a prompt naming the request, one line read.
	code, err = totpSource("", strings.NewReader("654321\nrest"), &prompt, true)("POST", "/v1/join-tokens")
	if err != nil || code != "654321" {
		t.Fatalf("prompt: %q %v", code, err)
	}
	if !strings.Contains(prompt.String(), "POST /v1/join-tokens") {
		t.Fatalf("prompt does not name the request: %q", prompt.String())
	}
	// Not a terminal and no flag: refused, nothing read.
	_, err = totpSource("", strings.NewReader("111111\n"), &prompt, false)("POST", "/v1/join-tokens")
	if !errors.Is(err, errStepUpNeedsCode) {
		t.Fatalf("no terminal: %v", err)
	}
	// A terminal that closes before a code: an error, not an empty code.
	if _, err = totpSource("", strings.NewReader(""), &prompt, true)("POST", "/x"); err == nil {
		t.Fatal("empty input accepted")
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

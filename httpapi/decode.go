package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// Request limits.
const (
	MaxBodyBytes = 1 << 20
	MaxJSONDepth = 32
)

// decodeJSON reads a bounded JSON body into v: at most MaxBodyBytes (413
// beyond), nesting at most MaxJSONDepth (400 beyond), no unknown fields, one
// value only.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return authority.Errf(authority.CodeTooLarge, "request body exceeds %d bytes", MaxBodyBytes)
		}
		return authority.Errf(authority.CodeInvalid, "could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	if err := checkDepth(body, MaxJSONDepth); err != nil {
		return err
	}
	return decodeBody(body, v)
}

// decodeBody decodes body (bounded, not blank, depth checked) into v: no
// unknown fields, one value only.
func decodeBody(body []byte, v any) error {
	if !utf8.Valid(body) {
		// JSON is UTF-8 (RFC 8259); encoding/json would silently turn the
		// bad bytes into U+FFFD and store that.
		return authority.Errf(authority.CodeInvalid, "invalid JSON body: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return authority.Errf(authority.CodeInvalid, "invalid JSON body: %s", err.Error())
	}
	if dec.More() {
		return authority.Errf(authority.CodeInvalid, "invalid JSON body: more than one value")
	}
	return nil
}

// checkDepth refuses JSON nested deeper than max without building it.
func checkDepth(body []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return authority.Errf(authority.CodeInvalid, "JSON nesting exceeds %d levels", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// page reads ?limit= and ?offset=.
func page(r *http.Request) (store.Page, error) {
	var p store.Page
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return p, authority.Errf(authority.CodeInvalid, "limit must be 1 to 500")
		}
		p.Limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return p, authority.Errf(authority.CodeInvalid, "offset must be a non-negative integer")
		}
		p.Offset = n
	}
	return p, nil
}

// List is the envelope of every list response.
type List[T any] struct {
	Items      []T  `json:"items"`
	NextOffset *int `json:"next_offset"`
}

func listOf[T any](items []T, p store.Page) List[T] {
	if items == nil {
		items = []T{}
	}
	l := List[T]{Items: items}
	limit := p.Limit
	if limit == 0 {
		limit = 50
	}
	if len(items) == limit {
		n := p.Offset + limit
		l.NextOffset = &n
	}
	return l
}

package authority

// Idempotency-Key fingerprints: the HTTP layer hashes the request a key came
// with (method, path and body) and hands the hash down in the context; Fenced
// stores it with the response and refuses a later request that reuses the key
// for a different request, instead of answering it with the first request's
// response.

import (
	"bytes"
	"context"
	"encoding/json"
)

type requestHashKey struct{}

// WithRequestHash returns ctx carrying the fingerprint of the request whose
// Idempotency-Key a fenced operation uses.
func WithRequestHash(ctx context.Context, hash string) context.Context {
	return context.WithValue(ctx, requestHashKey{}, hash)
}

func requestHashFrom(ctx context.Context) string {
	h, _ := ctx.Value(requestHashKey{}).(string)
	return h
}

// storedResponse is what idempotency_keys.response holds: the response with
// the request fingerprint. Rows written before fingerprints existed hold the
// bare response.
type storedResponse struct {
	RequestHash string          `json:"rap_request_sha256"`
	Response    json.RawMessage `json:"rap_response"`
}

// wrapResponse encodes v with the request fingerprint hash for storage.
func wrapResponse(hash string, v any) ([]byte, error) {
	resp, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(storedResponse{RequestHash: hash, Response: resp})
}

// unwrapResponse splits a stored response into its fingerprint (wrapped is
// false for rows stored without one) and the response.
func unwrapResponse(stored []byte) (hash string, resp []byte, wrapped bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(stored, &m); err == nil && len(m) == 2 && m["rap_request_sha256"] != nil && m["rap_response"] != nil {
		var s storedResponse
		if err := json.Unmarshal(stored, &s); err == nil {
			return s.RequestHash, s.Response, true
		}
	}
	return "", bytes.Clone(stored), false
}

// idempotencyReused is the error for a key reused with a different request.
func idempotencyReused(op Op) *Error {
	return &Error{Code: CodeIdempotencyReused,
		Message: "this Idempotency-Key was already used for a different request (method, path or body); use a new key for a new request",
		Details: map[string]any{"idempotency_key": op.IdempotencyKey, "action": op.Action}}
}

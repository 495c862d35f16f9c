package httpapi

import (
	"net/http"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// ownerHandler is a handler behind ownerAuth.
type ownerHandler = func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error

// noBody is the body type of actions that take none (an empty body or {}).
type noBody struct{}

// write adapts an owner action: decode the JSON body into B, read the
// Idempotency-Key, call f and answer status with its result.
func write[B, R any](status int, f func(r *http.Request, actor authority.Actor, body B, idemKey string) (R, error)) ownerHandler {
	return func(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
		var b B
		if err := decodeJSON(w, r, &b); err != nil {
			return err
		}
		k, err := idem(r)
		if err != nil {
			return err
		}
		out, err := f(r, actor, b, k)
		if err != nil {
			return err
		}
		writeJSON(w, status, out)
		return nil
	}
}

// read adapts an owner read: call f and answer 200 with its result.
func read[R any](f func(r *http.Request) (R, error)) ownerHandler {
	return func(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
		out, err := f(r)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// list adapts a paginated owner list (?limit, ?offset).
func list[T any](f func(r *http.Request, p store.Page) ([]T, error)) ownerHandler {
	return func(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
		p, err := page(r)
		if err != nil {
			return err
		}
		items, err := f(r, p)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, listOf(items, p))
		return nil
	}
}

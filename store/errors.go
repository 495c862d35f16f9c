package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Errors returned by the repositories. PostgreSQL error codes are mapped to them
// once, in mapErr; callers test with errors.Is.
var (
	// ErrNotFound: the row does not exist (or is not visible in the given scope).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique constraint refused a duplicate.
	ErrConflict = errors.New("conflict")
	// ErrConstraint: a CHECK, foreign key, NOT NULL or model rule refused the write.
	ErrConstraint = errors.New("constraint violated")
	// ErrStaleEpoch: the fence has moved past this transaction's epoch; a newer
	// authority leader exists and nothing was written.
	ErrStaleEpoch = errors.New("stale_epoch")
	// ErrFenceRequired: a write to a fenced table was attempted outside Fenced.
	ErrFenceRequired = errors.New("fence_required")
	// ErrAppendOnly: an attempt to change or delete an audit event.
	ErrAppendOnly = errors.New("append_only")
	// ErrTimeout: a lock or statement timeout, or the context ended.
	ErrTimeout = errors.New("database timeout")
	// ErrDeadlock: PostgreSQL chose this transaction (or savepoint) as a
	// deadlock victim and rolled it back; nothing of it was written, so it
	// may simply run again. It is also an ErrTimeout.
	ErrDeadlock = fmt.Errorf("%w: deadlock", ErrTimeout)
	// ErrUnavailable: the database could not be reached.
	ErrUnavailable = errors.New("database unavailable")
	// ErrOutcomeUnknown: the COMMIT failed in transit; the transaction may or
	// may not have committed. Retry with the same idempotency key.
	ErrOutcomeUnknown = errors.New("commit outcome unknown")
)

// mapErr turns pgx/PostgreSQL errors into the package's typed errors, keeping
// the original message. It is idempotent and leaves other errors unchanged.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ErrOutcomeUnknown, ErrNotFound, ErrConflict, ErrConstraint, ErrStaleEpoch, ErrFenceRequired, ErrAppendOnly, ErrDeadlock, ErrTimeout, ErrUnavailable} {
		if errors.Is(err, known) {
			return err
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w", ErrNotFound)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %s (%s)", ErrConflict, pgErr.Message, pgErr.ConstraintName)
		case "23503", "23514", "23502", "23P01", "22P02", "22001", "22023", "RF010", "RF011":
			return fmt.Errorf("%w: %s", ErrConstraint, pgErr.Message)
		case "RF001":
			return fmt.Errorf("%w: %s", ErrStaleEpoch, pgErr.Message)
		case "RF002", "RF003":
			return fmt.Errorf("%w: %s", ErrFenceRequired, pgErr.Message)
		case "RF020":
			return fmt.Errorf("%w: %s", ErrAppendOnly, pgErr.Message)
		case "40P01":
			return fmt.Errorf("%w: %s", ErrDeadlock, pgErr.Message)
		case "55P03", "57014":
			return fmt.Errorf("%w: %s", ErrTimeout, pgErr.Message)
		case "54000":
			// program_limit_exceeded: e.g. a value too large for an index row.
			return fmt.Errorf("%w: %s", ErrConstraint, pgErr.Message)
		}
		if strings.HasPrefix(pgErr.Code, "22") {
			// Class 22, data exception: the input itself is bad (a NUL or an
			// invalid byte sequence in text (22021), a number out of range,
			// a malformed value). The client's fault, never the server's.
			return fmt.Errorf("%w: %s", ErrConstraint, pgErr.Message)
		}
		if len(pgErr.Code) == 2 || (len(pgErr.Code) >= 2 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57")) {
			return fmt.Errorf("%w: %s", ErrUnavailable, pgErr.Message)
		}
		return err
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The connection broke mid-request (PostgreSQL restarted or the network
	// dropped): outside COMMIT (which Fenced maps to ErrOutcomeUnknown
	// itself) nothing was written, so the database is simply unavailable.
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// MapError maps an error from a raw pgx call to the package's typed errors.
func MapError(err error) error { return mapErr(err) }

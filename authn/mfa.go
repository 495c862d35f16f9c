package authn

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"image/png"
	"io"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// MFAStore keeps each user's TOTP secret, the last TOTP time step they used
// and their recovery-code hashes. Implementations must be safe for concurrent
// use; the two "consume" methods must be atomic (a compare-and-set in one
// statement or under a row lock) because they are what makes codes single-use.
type MFAStore interface {
	// TOTPSecret returns the user's confirmed base32 TOTP secret, or an error
	// wrapping ErrMFANotEnrolled. The store should keep it encrypted at rest.
	TOTPSecret(ctx context.Context, userID string) (string, error)
	// SaveTOTP replaces the user's secret and sets the last used step to
	// lastStep (the step that confirmed enrollment).
	SaveTOTP(ctx context.Context, userID, secret string, lastStep int64) error
	// AdvanceTOTPStep atomically records step as the user's last used step if
	// and only if it is greater than the recorded one, reporting whether it did.
	// SQL: UPDATE ... SET last_step=$2 WHERE user_id=$1 AND last_step < $2.
	AdvanceTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
	// ReplaceRecoveryCodes discards the user's recovery codes and stores hashes.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []TokenHash) error
	// ConsumeRecoveryCode atomically marks the unused code with hash h as used,
	// reporting whether such an unused code existed.
	ConsumeRecoveryCode(ctx context.Context, userID string, h TokenHash) (bool, error)
}

// TOTPConfig configures TOTP enrollment and verification. The zero value of a
// field means its default.
type TOTPConfig struct {
	Issuer        string // shown in authenticator apps; default "RAP Fabric"
	Period        uint   // seconds per step; default 30
	Skew          uint   // steps accepted either side of now; default 1
	SecretSize    uint   // secret bytes; default 20 (160 bits, RFC 4226)
	QRSize        int    // QR PNG width and height in pixels; default 256
	RecoveryCodes int    // recovery codes per (re)generation; default 10
}

// maxTOTPSkew caps TOTPConfig.Skew: each extra step widens the guessing window.
const maxTOTPSkew = 2

// DefaultTOTPConfig returns the defaults: 6 digits, SHA-1 (what authenticator
// apps support), 30 s period, skew 1, 10 recovery codes.
func DefaultTOTPConfig() TOTPConfig {
	return TOTPConfig{Issuer: "RAP Fabric", Period: 30, Skew: 1, SecretSize: 20, QRSize: 256, RecoveryCodes: 10}
}

func (c TOTPConfig) withDefaults() TOTPConfig {
	d := DefaultTOTPConfig()
	if c.Issuer == "" {
		c.Issuer = d.Issuer
	}
	if c.Period == 0 {
		c.Period = d.Period
	}
	if c.Skew == 0 {
		c.Skew = d.Skew
	}
	if c.SecretSize == 0 {
		c.SecretSize = d.SecretSize
	}
	if c.QRSize == 0 {
		c.QRSize = d.QRSize
	}
	if c.RecoveryCodes == 0 {
		c.RecoveryCodes = d.RecoveryCodes
	}
	return c
}

// Validate reports the first unusable field (after defaults are applied).
func (c TOTPConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Skew > maxTOTPSkew:
		return fmt.Errorf("%w: TOTP Skew %d above %d", ErrInvalidConfig, c.Skew, maxTOTPSkew)
	case c.SecretSize < 16:
		return fmt.Errorf("%w: TOTP SecretSize must be >= 16 bytes", ErrInvalidConfig)
	case c.Period < 15 || c.Period > 120:
		return fmt.Errorf("%w: TOTP Period must be in [15,120] s", ErrInvalidConfig)
	case c.RecoveryCodes < 1 || c.RecoveryCodes > 50:
		return fmt.Errorf("%w: RecoveryCodes must be in [1,50]", ErrInvalidConfig)
	}
	return nil
}

// MFAOptions configures NewMFA.
type MFAOptions struct {
	Config TOTPConfig // zero fields: defaults
	Store  MFAStore   // required
	Clock  Clock      // nil: SystemClock
	Rand   io.Reader  // nil: crypto/rand
}

// MFA enrolls and verifies the TOTP second factor and recovery codes.
type MFA struct {
	cfg   TOTPConfig
	store MFAStore
	clock Clock
	rand  io.Reader
}

// NewMFA validates opts and returns an MFA.
func NewMFA(opts MFAOptions) (*MFA, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: MFA store is nil", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock()
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	return &MFA{cfg: opts.Config.withDefaults(), store: opts.Store, clock: opts.Clock, rand: opts.Rand}, nil
}

// Enrollment is what a user needs to add the TOTP secret to an authenticator:
// the otpauth:// URI and the same URI as a PNG QR code. Secret is also what
// ConfirmEnrollment must receive back (keep it server-side or in a signed,
// short-lived form; never log it).
type Enrollment struct {
	Secret string // base32, no padding
	URI    string // otpauth://totp/<issuer>:<account>?...
	QRPNG  []byte // PNG image of URI
}

// BeginEnrollment generates a fresh secret for accountName (usually the user
// name). Nothing is stored until ConfirmEnrollment proves the user's app works.
func (m *MFA) BeginEnrollment(accountName string) (*Enrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      m.cfg.Issuer,
		AccountName: accountName,
		Period:      m.cfg.Period,
		SecretSize:  m.cfg.SecretSize,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
		Rand:        m.rand,
	})
	if err != nil {
		return nil, fmt.Errorf("authn: generating TOTP key: %w", err)
	}
	img, err := key.Image(m.cfg.QRSize, m.cfg.QRSize)
	if err != nil {
		return nil, fmt.Errorf("authn: rendering TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("authn: encoding TOTP QR code: %w", err)
	}
	return &Enrollment{Secret: key.Secret(), URI: key.URL(), QRPNG: buf.Bytes()}, nil
}

// ConfirmEnrollment checks code against the not-yet-stored secret, then stores
// the secret (replacing any previous one) and a fresh set of recovery codes,
// whose plaintexts are returned to show the user once.
func (m *MFA) ConfirmEnrollment(ctx context.Context, userID, secret, code string) ([]string, error) {
	step, ok, err := m.matchStep(secret, code, m.clock.Now())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBadSecondFactor
	}
	if err := m.store.SaveTOTP(ctx, userID, secret, step); err != nil {
		return nil, fmt.Errorf("authn: saving TOTP secret: %w", err)
	}
	return m.RegenerateRecoveryCodes(ctx, userID)
}

// Enrolled reports whether the user has a confirmed TOTP secret.
func (m *MFA) Enrolled(ctx context.Context, userID string) (bool, error) {
	_, err := m.store.TOTPSecret(ctx, userID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrMFANotEnrolled):
		return false, nil
	default:
		return false, err
	}
}

// VerifyTOTP checks a code for the user at the clock's current time, accepting
// Skew steps either side, and then atomically claims the matched time step:
// a code (or any code of an earlier step) is accepted at most once per user.
// Errors: ErrMFANotEnrolled, ErrBadSecondFactor, ErrTOTPReplay.
func (m *MFA) VerifyTOTP(ctx context.Context, userID, code string) error {
	secret, err := m.store.TOTPSecret(ctx, userID)
	if err != nil {
		return err
	}
	step, ok, err := m.matchStep(secret, code, m.clock.Now())
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadSecondFactor
	}
	advanced, err := m.store.AdvanceTOTPStep(ctx, userID, step)
	if err != nil {
		return fmt.Errorf("authn: recording TOTP step: %w", err)
	}
	if !advanced {
		return ErrTOTPReplay
	}
	return nil
}

// matchStep finds which time step within the skew window code belongs to.
// totp.ValidateCustom with skew 1 only answers yes/no; replay protection needs
// the step, so each candidate step is validated with skew 0 (the same set of
// steps, current first).
func (m *MFA) matchStep(secret, code string, now time.Time) (int64, bool, error) {
	code = strings.TrimSpace(code)
	if len(code) != otp.DigitsSix.Length() {
		return 0, false, nil
	}
	period := int64(m.cfg.Period)
	cur := now.Unix() / period
	cands := []int64{cur}
	for i := int64(1); i <= int64(m.cfg.Skew); i++ {
		cands = append(cands, cur-i, cur+i)
	}
	for _, step := range cands {
		ok, err := totp.ValidateCustom(code, secret, time.Unix(step*period, 0), totp.ValidateOpts{
			Period: m.cfg.Period, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			if errors.Is(err, otp.ErrValidateSecretInvalidBase32) {
				return 0, false, fmt.Errorf("authn: stored TOTP secret unusable: %w", err)
			}
			return 0, false, nil
		}
		if ok {
			return step, true, nil
		}
	}
	return 0, false, nil
}

// GenerateTOTPCode returns the code for secret at time t with the package's
// fixed algorithm (6 digits, SHA-1) and the given period (0: 30 s). It exists
// for tests and for tooling that drives a login programmatically.
func GenerateTOTPCode(secret string, t time.Time, period uint) (string, error) {
	if period == 0 {
		period = 30
	}
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// Recovery codes: 16 characters of lowercase base32 (80 bits) shown as four
// groups of four. They are stored as SHA-256 over a domain tag, the user id
// and the normalised code; 80 random bits make a slow hash unnecessary.

var recoveryEnc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// HashRecoveryCode returns the stored form of a recovery code for userID. Input
// is normalised: case, spaces and dashes are ignored.
func HashRecoveryCode(userID, code string) TokenHash {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, code)
	h := sha256.New()
	h.Write([]byte("rap-recovery-code\x00"))
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(norm))
	var out TokenHash
	copy(out[:], h.Sum(nil))
	return out
}

// RegenerateRecoveryCodes replaces the user's recovery codes with a fresh set
// and returns the plaintexts (shown once, never stored).
func (m *MFA) RegenerateRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	codes := make([]string, m.cfg.RecoveryCodes)
	hashes := make([]TokenHash, m.cfg.RecoveryCodes)
	raw := make([]byte, 10)
	for i := range codes {
		if _, err := io.ReadFull(m.rand, raw); err != nil {
			return nil, fmt.Errorf("authn: reading recovery code randomness: %w", err)
		}
		s := recoveryEnc.EncodeToString(raw) // 16 chars
		codes[i] = s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
		hashes[i] = HashRecoveryCode(userID, codes[i])
	}
	if err := m.store.ReplaceRecoveryCodes(ctx, userID, hashes); err != nil {
		return nil, fmt.Errorf("authn: storing recovery codes: %w", err)
	}
	return codes, nil
}

// VerifyRecoveryCode consumes one of the user's recovery codes. Each code works
// once; ErrBadSecondFactor otherwise. A recovery code is accepted at login only,
// never for step-up (step-up needs the live second factor).
func (m *MFA) VerifyRecoveryCode(ctx context.Context, userID, code string) error {
	ok, err := m.store.ConsumeRecoveryCode(ctx, userID, HashRecoveryCode(userID, code))
	if err != nil {
		return fmt.Errorf("authn: consuming recovery code: %w", err)
	}
	if !ok {
		return ErrBadSecondFactor
	}
	return nil
}

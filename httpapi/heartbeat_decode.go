package httpapi

// A lean decoder of the heartbeat body (the hot route's JSON): a single pass
// over the bytes without reflection, for the fields agents send. It produces
// exactly what encoding/json (decodeBody) produces, or gives up: anything it
// does not handle exactly as encoding/json would (an unknown or repeated key,
// a key in another case, an escape in a string it keeps, null, a number
// with a fraction or exponent, invalid JSON) makes the caller decode the
// body with decodeBody instead, which then decodes it or refuses it with its
// own error. A field added to agentapi.Heartbeat later is unknown here and so
// still decoded, by encoding/json.

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
)

// leanHeartbeat decodes body (not blank, depth checked) into a heartbeat;
// ok false means decodeBody must decode it. Nothing returned aliases body.
func leanHeartbeat(body []byte) (in authority.HeartbeatInput, ok bool) {
	if !utf8.Valid(body) {
		return in, false
	}
	p := leanParser{b: body}
	p.ws()
	if !p.eat('{') {
		return in, false
	}
	p.ws()
	if p.eat('}') {
		return in, p.end()
	}
	var seen uint16
	for {
		key, ok := p.plainString()
		if !ok {
			return in, false
		}
		p.ws()
		if !p.eat(':') {
			return in, false
		}
		p.ws()
		bit, ok := heartbeatKeys[string(key)]
		if !ok || seen&bit != 0 {
			return in, false
		}
		seen |= bit
		switch bit {
		case keySeq:
			in.Seq, ok = p.int64()
		case keyApplied:
			in.AppliedVersion, ok = p.int64()
		case keySentAt:
			ok = p.time(&in.SentAt)
		case keyAgentVersion:
			in.AgentVersion, ok = p.text()
		case keyState:
			in.State, ok = p.text()
		case keyHealth:
			in.Health, ok = p.raw()
		case keyServices:
			in.Services, ok = p.raw()
		case keyFacts:
			in.Facts, ok = p.raw()
		case keyCapabilities:
			in.Capabilities, ok = p.capabilities()
		case keyUpdates:
			in.Updates, ok = p.updates()
		}
		if !ok {
			return in, false
		}
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		if !p.eat('}') {
			return in, false
		}
		return in, p.end()
	}
}

// Keys of agentapi.Heartbeat the lean decoder knows.
const (
	keySeq uint16 = 1 << iota
	keySentAt
	keyAgentVersion
	keyApplied
	keyState
	keyHealth
	keyServices
	keyCapabilities
	keyFacts
	keyUpdates
)

var heartbeatKeys = map[string]uint16{
	"seq": keySeq, "sent_at": keySentAt, "agent_version": keyAgentVersion, "applied_version": keyApplied, "state": keyState,
	"health": keyHealth, "services": keyServices, "capabilities": keyCapabilities, "facts": keyFacts, "updates": keyUpdates,
}

// Keys of agentapi.UpdateReport.
var updateKeys = map[string]uint8{
	"product": 1 << 0, "current_version": 1 << 1, "from_version": 1 << 2, "target_version": 1 << 3, "state": 1 << 4,
	"last_failure": 1 << 5, "previous_version": 1 << 6,
}

type leanParser struct {
	b []byte
	i int
}

func (p *leanParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *leanParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end: only white space may follow the value.
func (p *leanParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// plainString reads a string without escapes and returns its bytes (inside
// body); ok false on an escape, a control character or no string.
func (p *leanParser) plainString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *leanParser) text() (string, bool) {
	s, ok := p.plainString()
	return string(s), ok
}

// int64 reads a JSON integer (no fraction, no exponent) that fits int64.
func (p *leanParser) int64() (int64, bool) {
	start := p.i
	p.eat('-')
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || n > 1 && p.b[digits] == '0' || n > 19 {
		return 0, false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	return v, err == nil
}

// time reads a time string as encoding/json does: time.Time's UnmarshalJSON
// on the quoted bytes (null and escapes are left to encoding/json).
func (p *leanParser) time(t *time.Time) bool {
	start := p.i
	if _, ok := p.plainString(); !ok {
		return false
	}
	return t.UnmarshalJSON(p.b[start:p.i]) == nil
}

// raw reads any valid JSON value but null and returns a copy of its bytes,
// as json.RawMessage keeps them.
func (p *leanParser) raw() ([]byte, bool) {
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == 'n' {
		return nil, false
	}
	if !p.skip() {
		return nil, false
	}
	return bytes.Clone(p.b[start:p.i]), true
}

// skip passes over one valid JSON value (nesting is bounded by checkDepth).
func (p *leanParser) skip() bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		p.i++
		p.ws()
		if p.eat('}') {
			return true
		}
		for {
			if !p.str() {
				return false
			}
			p.ws()
			if !p.eat(':') {
				return false
			}
			p.ws()
			if !p.skip() {
				return false
			}
			p.ws()
			if p.eat(',') {
				p.ws()
				continue
			}
			return p.eat('}')
		}
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return true
		}
		for {
			if !p.skip() {
				return false
			}
			p.ws()
			if p.eat(',') {
				p.ws()
				continue
			}
			return p.eat(']')
		}
	case c == '"':
		return p.str()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return false
}

func (p *leanParser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str passes over a valid JSON string, escapes included.
func (p *leanParser) str() bool {
	if !p.eat('"') {
		return false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return false
			}
			switch p.b[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.b) {
					return false
				}
				for _, h := range p.b[p.i+2 : p.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				p.i += 6
			default:
				return false
			}
		default:
			p.i++
		}
	}
	return false
}

// number passes over a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *leanParser) number() bool {
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.eat('0') {
		// no more digits may follow a leading zero
		if p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			return false
		}
	} else if digits() == 0 {
		return false
	}
	if p.eat('.') && digits() == 0 {
		return false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// capabilities reads an array of plain strings ([] is an empty, not nil,
// slice, as encoding/json makes it).
func (p *leanParser) capabilities() ([]domain.Capability, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []domain.Capability{}
	p.ws()
	if p.eat(']') {
		return out, true
	}
	for {
		s, ok := p.text()
		if !ok {
			return nil, false
		}
		out = append(out, domain.Capability(s))
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		return out, p.eat(']')
	}
}

// updates reads an array of update reports whose fields are all plain
// strings.
func (p *leanParser) updates() ([]agentapi.UpdateReport, bool) {
	if !p.eat('[') {
		return nil, false
	}
	out := []agentapi.UpdateReport{}
	p.ws()
	if p.eat(']') {
		return out, true
	}
	for {
		u, ok := p.update()
		if !ok {
			return nil, false
		}
		out = append(out, u)
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		return out, p.eat(']')
	}
}

func (p *leanParser) update() (u agentapi.UpdateReport, ok bool) {
	if !p.eat('{') {
		return u, false
	}
	p.ws()
	if p.eat('}') {
		return u, true
	}
	var seen uint8
	for {
		key, ok := p.plainString()
		if !ok {
			return u, false
		}
		p.ws()
		if !p.eat(':') {
			return u, false
		}
		p.ws()
		bit, known := updateKeys[string(key)]
		if !known || seen&bit != 0 {
			return u, false
		}
		seen |= bit
		v, ok := p.text()
		if !ok {
			return u, false
		}
		switch string(key) {
		case "product":
			u.Product = v
		case "current_version":
			u.CurrentVersion = v
		case "from_version":
			u.FromVersion = v
		case "target_version":
			u.TargetVersion = v
		case "state":
			u.State = v
		case "last_failure":
			u.LastFailure = v
		case "previous_version":
			u.PreviousVersion = v
		}
		p.ws()
		if p.eat(',') {
			p.ws()
			continue
		}
		return u, p.eat('}')
	}
}

package snapshot

// Fast path of DecodeSnapshot for the canonical encoding.
//
// Encode writes one shape only: compact JSON, the members of every object in
// the declared order of its Go struct, optional members omitted when empty,
// times as UTC RFC 3339 ("…Z"), []byte as padded standard base64, and
// embedded JSON documents (json.RawMessage) compacted. decodeCanonical is a
// direct byte scanner for exactly that shape: no tokenizer, no reflection.
//
// It also allocates little: every decoded string without escape sequences
// is a substring of one string(payload); the raw documents and decoded
// []byte values are carved from one shared chunk, and the lists of strings
// from one shared backing array (each capped with a full slice expression,
// so appending to one never writes into another); every other list is
// allocated once at its exact length. BenchmarkVerify's snapshot costs 12
// allocations instead of jsonv2's 105.
//
// Why it is safe:
//
//   - It is only ever an optimisation. On any deviation from the canonical
//     shape (an unknown, out-of-order or repeated member, whitespace, a
//     number with a sign, fraction or exponent where none belongs or out of
//     range, an escape or UTF-8 sequence it does not handle, a time not in
//     "…Z" form, anything) it reports false and DecodeSnapshot decodes the
//     payload with the general jsonv2 decoder instead. It accepts a subset
//     of what jsonv2 accepts and must then produce the identical value; it
//     never has to reproduce jsonv2's errors.
//   - Verify decodes only payloads whose signature has verified, so in
//     production it sees only the authority's own Encode output.
//   - The tests compare it with jsonv2 on every node of generated clusters
//     (TestFastDecodeMatchesJSONv2), on a snapshot with every field set
//     (TestFastDecodeComplete), on arbitrary input
//     (FuzzFastDecodeMatchesJSONv2) and on Encode's output for arbitrary
//     values (FuzzFastDecodeEncoded).
//
// Keeping it in sync with model.go: every struct reachable from Snapshot has
// one method below, listing its members in declaration order (a new struct
// type needs a new method). A removed field or a changed field type does not
// compile. A field added to the model without a line here, a renamed member
// or a changed order makes the fast path refuse every payload that has the
// member (still correct, only slower); TestFastDecodeComplete fills every
// field by reflection and fails until the method matches the model again.

import (
	"encoding/json"
	"math"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rap-fabric/core/domain"
)

// decodeCanonical decodes a payload in Encode's canonical shape without
// reflection. ok is false when the payload is not exactly in that shape (the
// caller then decodes it with jsonv2); when ok is true, w is what
// jsonv2.Unmarshal gives for the same payload.
func decodeCanonical(payload []byte) (w wireSnapshot, ok bool) {
	d := scanner{s: string(payload)}
	w = d.wireSnapshot()
	if d.bad || d.i != len(d.s) {
		return wireSnapshot{}, false
	}
	return w, true
}

// scanner reads the canonical encoding. Once bad is set every method is a
// no-op returning a zero value, so the decoding functions need not check
// after each step; decodeCanonical checks bad once at the end.
type scanner struct {
	s     string        // the payload
	i     int           // read position in s
	comma bool          // the next member of the current object is preceded by ','
	bad   bool          // the input is not canonical: give up
	bin   []byte        // free space of the chunk that raw documents and decoded bytes are allocated in
	strs  []string      // shared backing array of the decoded []string lists
	roles []domain.Role // shared backing array of the decoded []domain.Role lists
	names []string      // member names of the raw-document objects being checked for duplicates
	room  [8]string     // initial backing array of names
}

// maxRawDepth and maxRawMembers bound the embedded documents the fast path
// checks (nesting, and members per object for the duplicate-name check);
// larger ones go to jsonv2.
const (
	maxRawDepth   = 32
	maxRawMembers = 32
)

// fail marks the input as not canonical.
func (d *scanner) fail() { d.bad = true }

// next consumes c if it is the next byte.
func (d *scanner) next(c byte) bool {
	if !d.bad && d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// expect consumes c or fails.
func (d *scanner) expect(c byte) {
	if !d.next(c) {
		d.fail()
	}
}

// literal consumes lit if the input continues with it.
func (d *scanner) literal(lit string) bool {
	if !d.bad && len(d.s)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// null consumes a JSON null.
func (d *scanner) null() bool { return d.literal("null") }

// objStart consumes the '{' of an object.
func (d *scanner) objStart() {
	d.expect('{')
	d.comma = false
}

// key consumes `"name":` (preceded by ',' unless it is the object's first
// member) and reports whether the object continues with that member. Members
// are looked for in declaration order, each at most once; a member that is
// not next is absent, and whatever is left unconsumed makes objEnd fail.
func (d *scanner) key(name string) bool {
	if d.bad {
		return false
	}
	i := d.i
	if d.comma {
		if i >= len(d.s) || d.s[i] != ',' {
			return false
		}
		i++
	}
	j := i + 1 + len(name) // the closing quote
	if j+1 >= len(d.s) || d.s[i] != '"' || d.s[i+1:j] != name || d.s[j] != '"' || d.s[j+1] != ':' {
		return false
	}
	d.i = j + 2
	d.comma = true
	return true
}

// objEnd consumes the '}' of an object.
func (d *scanner) objEnd() {
	d.expect('}')
	d.comma = true
}

// span consumes a JSON string and returns the bounds of its contents in s
// and whether they contain escape sequences. It fails on control
// characters, invalid UTF-8 and escapes jsonv2 might refuse (lone
// surrogates).
func (d *scanner) span() (start, end int, escaped bool) {
	if !d.next('"') {
		d.fail()
		return 0, 0, false
	}
	s := d.s
	start = d.i
	high := false
	i := start
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			if high && !utf8.ValidString(s[start:i]) {
				d.fail()
				return 0, 0, false
			}
			d.i = i + 1
			return start, i, escaped
		case c == '\\':
			n := escapeLen(s[i:])
			if n == 0 {
				d.fail()
				return 0, 0, false
			}
			escaped = true
			i += n
			continue
		case c < 0x20:
			d.fail()
			return 0, 0, false
		case c >= utf8.RuneSelf:
			high = true
		}
		i++
	}
	d.fail()
	return 0, 0, false
}

// escapeLen returns the length of the escape sequence at the start of s, or
// 0 if it is not one the fast path decodes: \" \\ \/ \b \f \n \r \t, \uXXXX
// of a non-surrogate, and a \uXXXX\uXXXX surrogate pair.
func escapeLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch s[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		r := hex4(s[2:])
		switch {
		case r < 0:
			return 0
		case !utf16.IsSurrogate(rune(r)):
			return 6
		case r < 0xdc00 && len(s) >= 12 && s[6] == '\\' && s[7] == 'u':
			if lo := hex4(s[8:]); lo >= 0xdc00 && lo <= 0xdfff {
				return 12
			}
		}
	}
	return 0
}

// hex4 returns the value of the 4 hex digits at the start of s, or -1.
func hex4(s string) int {
	if len(s) < 4 {
		return -1
	}
	v := 0
	for _, c := range []byte(s[:4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | int(c)
	}
	return v
}

// unescape decodes the escape sequences of string contents span accepted.
func unescape(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		n := escapeLen(s[i:])
		switch s[i+1] {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r := rune(hex4(s[i+2:]))
			if n == 12 {
				r = utf16.DecodeRune(r, rune(hex4(s[i+8:])))
			}
			b = utf8.AppendRune(b, r)
			i += n
			continue
		default: // '"', '\\', '/'
			c = s[i+1]
		}
		b = append(b, c)
		i += n
	}
	return string(b)
}

// str consumes a JSON string and returns its value: a substring of the
// payload unless it has escape sequences.
func (d *scanner) str() string {
	start, end, escaped := d.span()
	if escaped {
		return unescape(d.s[start:end])
	}
	return d.s[start:end]
}

// plain consumes a JSON string without escape sequences (times, base64) and
// returns its contents.
func (d *scanner) plain() (start, end int) {
	start, end, escaped := d.span()
	if escaped {
		d.fail()
	}
	return start, end
}

// digits consumes a JSON integer without sign: "0" or digits not starting
// with '0'. It fails when the value exceeds limit.
func (d *scanner) digits(limit uint64) uint64 {
	s := d.s
	i := d.i
	if d.bad || i >= len(s) || s[i] < '0' || s[i] > '9' {
		d.fail()
		return 0
	}
	if s[i] == '0' {
		d.i = i + 1 // a digit after it is refused by whatever comes next
		return 0
	}
	var n uint64
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		c := uint64(s[i] - '0')
		if n > (limit-c)/10 {
			d.fail()
			return 0
		}
		n = n*10 + c
	}
	d.i = i
	return n
}

// uint consumes a JSON integer within uint64.
func (d *scanner) uint() uint64 { return d.digits(math.MaxUint64) }

// int consumes a JSON integer within int. A fraction or exponent is left
// unconsumed, so the structure check after it fails.
func (d *scanner) int() int {
	if d.next('-') {
		if d.i < len(d.s) && d.s[d.i] == '0' {
			d.fail() // "-0": leave it to jsonv2
			return 0
		}
		n := d.digits(uint64(math.MaxInt) + 1)
		return int(-n) // two's complement: also right for math.MinInt
	}
	return int(d.digits(math.MaxInt))
}

// bool consumes true or false.
func (d *scanner) bool() bool {
	switch {
	case d.literal("true"):
		return true
	case d.literal("false"):
		return false
	}
	d.fail()
	return false
}

// time consumes a time as Encode writes it: "2006-01-02T15:04:05Z" with an
// optional fraction of 1 to 9 digits, in UTC. time.Time.UnmarshalText (what
// jsonv2 uses) gives the same instant, in UTC, for these.
func (d *scanner) time() time.Time {
	start, end := d.plain()
	s := d.s[start:end]
	if d.bad || len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
		s[13] != ':' || s[16] != ':' || s[len(s)-1] != 'Z' {
		d.fail()
		return time.Time{}
	}
	year, month, day := dec(s[0:4]), dec(s[5:7]), dec(s[8:10])
	hour, minute, sec := dec(s[11:13]), dec(s[14:16]), dec(s[17:19])
	nsec := 0
	if frac := s[19 : len(s)-1]; frac != "" {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			d.fail()
			return time.Time{}
		}
		nsec = dec(frac[1:])
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 || nsec < 0 {
		d.fail()
		return time.Time{}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
}

// dec returns the value of the decimal digits s, or -1 if s has another
// byte. s is at most 9 digits long.
func dec(s string) int {
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return -1
		}
		v = v*10 + int(c-'0')
	}
	return v
}

// daysIn returns the number of days of a month (1–12) of a year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// alloc returns n bytes (capped: appending copies) from the chunk that raw
// documents and decoded bytes share, starting a new chunk when the current
// one is full. The first chunk's size is an eighth of the payload, about
// what Encode's embedded documents and keys take in a typical snapshot.
func (d *scanner) alloc(n int) []byte {
	if d.bin == nil || n > len(d.bin) { // also for n == 0: an empty []byte is not nil
		d.bin = make([]byte, max(n, len(d.s)/8, 2*cap(d.bin), 64))
	}
	b := d.bin[:n:n]
	d.bin = d.bin[n:]
	return b
}

// base64Values maps the bytes of the standard base64 alphabet to their
// values and every other byte (including the padding '=') to 0xff.
var base64Values = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// bytes consumes a []byte: null, or padded standard base64 as encoding/json
// writes it (unused bits zero, no line breaks).
func (d *scanner) bytes() []byte {
	if d.null() {
		return nil
	}
	start, end := d.plain()
	if d.bad || (end-start)%4 != 0 {
		d.fail()
		return nil
	}
	s := d.s[start:end]
	n := len(s) / 4 * 3
	if len(s) > 0 && s[len(s)-1] == '=' {
		n--
		if s[len(s)-2] == '=' {
			n--
		}
	}
	out := d.alloc(n)
	w := 0
	for r := 0; r < len(s); r += 4 {
		a, b, c, e := base64Values[s[r]], base64Values[s[r+1]], base64Values[s[r+2]], base64Values[s[r+3]]
		switch {
		case a|b|c|e < 64:
			out[w], out[w+1], out[w+2] = a<<2|b>>4, b<<4|c>>2, c<<6|e
			w += 3
			continue
		case r+4 != len(s) || a|b >= 64 || s[r+3] != '=':
			// invalid, or padding before the last quantum
		case s[r+2] == '=' && b&0x0f == 0:
			out[w] = a<<2 | b>>4
			return out
		case c < 64 && c&0x03 == 0:
			out[w], out[w+1] = a<<2|b>>4, b<<4|c>>2
			return out
		}
		d.fail()
		return nil
	}
	return out
}

// raw consumes any JSON value and returns a copy of its text, as jsonv2
// passes it to json.RawMessage.UnmarshalJSON.
func (d *scanner) raw() json.RawMessage {
	start := d.i
	d.skip(0)
	if d.bad {
		return nil
	}
	out := d.alloc(d.i - start)
	copy(out, d.s[start:d.i])
	return out
}

// skip consumes one compact JSON value, checking it as jsonv2 would (valid
// strings, no duplicate member names) or failing where unsure.
func (d *scanner) skip(depth int) {
	if d.bad || d.i >= len(d.s) || depth > maxRawDepth {
		d.fail()
		return
	}
	switch c := d.s[d.i]; {
	case c == '{':
		d.i++
		if d.names == nil {
			d.names = d.room[:0]
		}
		mark := len(d.names)
		if !d.next('}') {
			for first := true; first || d.next(','); first = false {
				start, end, escaped := d.span()
				name := d.s[start:end]
				if escaped || len(d.names)-mark >= maxRawMembers {
					d.fail()
				}
				for _, n := range d.names[mark:] {
					if n == name {
						d.fail()
					}
				}
				d.names = append(d.names, name)
				d.expect(':')
				d.skip(depth + 1)
			}
			d.expect('}')
		}
		d.names = d.names[:mark]
	case c == '[':
		d.i++
		if !d.next(']') {
			for first := true; first || d.next(','); first = false {
				d.skip(depth + 1)
			}
			d.expect(']')
		}
	case c == '"':
		d.span()
	case c == '-' || '0' <= c && c <= '9':
		d.number()
	case d.literal("true"), d.literal("false"), d.null():
	default:
		d.fail()
	}
}

// number consumes a JSON number of any form (in a raw document).
func (d *scanner) number() {
	d.next('-')
	if !d.next('0') {
		d.digitRun()
	}
	if d.next('.') {
		d.digitRun()
	}
	if d.next('e') || d.next('E') {
		if !d.next('+') {
			d.next('-')
		}
		d.digitRun()
	}
}

// digitRun consumes one or more decimal digits.
func (d *scanner) digitRun() {
	i := d.i
	for i < len(d.s) && '0' <= d.s[i] && d.s[i] <= '9' {
		i++
	}
	if i == d.i {
		d.fail()
		return
	}
	d.i = i
}

// stringList consumes a list of strings (or null) into the shared backing
// array *arena, which is made on first use with room for about as many
// strings as a typical snapshot's lists hold.
func stringList[T ~string](d *scanner, arena *[]T) []T {
	if d.null() {
		return nil
	}
	d.expect('[')
	if d.next(']') {
		return []T{}
	}
	if *arena == nil {
		*arena = make([]T, 0, 8+len(d.s)/128)
	}
	start := len(*arena)
	for first := true; first || d.next(','); first = false {
		*arena = append(*arena, T(d.str()))
	}
	d.expect(']')
	a := *arena
	return a[start:len(a):len(a)]
}

// list consumes a list (or null), decoding each element with elem. The
// first elements are collected on the stack, so a list of up to
// len(first) elements costs one allocation of exactly its length.
func list[T any](d *scanner, elem func(*scanner) T) []T {
	if d.null() {
		return nil
	}
	d.expect('[')
	if d.next(']') {
		return []T{}
	}
	var first [8]T
	n := 0
	var rest []T // the elements after the first len(first)
	for more := true; more; more = d.next(',') {
		if n < len(first) {
			first[n] = elem(d)
			n++
		} else {
			rest = append(rest, elem(d))
		}
	}
	d.expect(']')
	if d.bad {
		return nil
	}
	out := make([]T, n+len(rest))
	copy(out[copy(out, first[:n]):], rest)
	return out
}

// The decoding functions of the model types: members in declaration order,
// each optional.

// wireSnapshot decodes the payload's top-level object.
func (d *scanner) wireSnapshot() (w wireSnapshot) {
	d.objStart()
	if d.key("format") {
		w.Format = d.int()
	}
	if d.key("cluster_id") {
		w.ClusterID = d.str()
	}
	if d.key("node_id") {
		w.NodeID = d.str()
	}
	if d.key("version") {
		w.Version = d.uint()
	}
	if d.key("epoch") {
		w.Epoch = d.uint()
	}
	if d.key("issued_at") {
		w.IssuedAt = d.time()
	}
	if d.key("expires_at") {
		w.ExpiresAt = d.time()
	}
	if d.key("scope") {
		w.Scope = stringList(d, &d.strs)
	}
	if d.key("body") {
		w.Body = d.body()
	}
	d.objEnd()
	return w
}

// body decodes a Body.
func (d *scanner) body() (b Body) {
	d.objStart()
	if d.key("self") {
		b.Self = d.identity()
	}
	if d.key("membership") {
		b.Membership = d.membership()
	}
	if d.key("roles") {
		b.Roles = list(d, (*scanner).roleGrant)
	}
	if d.key("revocations") {
		b.Revocations = d.revocations()
	}
	if d.key("config_storage") {
		b.ConfigStorage = list(d, (*scanner).storageEndpoint)
	}
	if d.key("ca_roots") {
		b.CARoots = list(d, (*scanner).caRoot)
	}
	if d.key("telemetry") {
		b.Telemetry = list(d, (*scanner).telemetryFlag)
	}
	if d.key("gossip_key") && !d.null() {
		b.GossipKey = new(GossipKey)
		*b.GossipKey = d.gossipKey()
	}
	if d.key("peers") {
		b.Peers = list(d, (*scanner).peer)
	}
	if d.key("route_policy") {
		b.RoutePolicy = d.raw()
	}
	if d.key("qos_policy") {
		b.QoSPolicy = d.raw()
	}
	if d.key("uplinks") {
		b.Uplinks = list(d, (*scanner).peer)
	}
	if d.key("entry_policies") {
		b.EntryPolicies = list(d, (*scanner).entryPolicy)
	}
	if d.key("token_validation") && !d.null() {
		b.TokenValidation = new(TokenValidation)
		*b.TokenValidation = d.tokenValidation()
	}
	if d.key("services") {
		b.Services = list(d, (*scanner).serviceConfig)
	}
	if d.key("resources") {
		b.Resources = list(d, (*scanner).resourceRef)
	}
	if d.key("connectors") {
		b.Connectors = list(d, (*scanner).connectorRef)
	}
	if d.key("organizations") {
		b.Organizations = list(d, (*scanner).orgRef)
	}
	if d.key("egress_pools") {
		b.EgressPools = list(d, (*scanner).egressPoolRef)
	}
	if d.key("cache_nodes") {
		b.CacheNodes = stringList(d, &d.strs)
	}
	if d.key("updates") && !d.null() {
		b.Updates = new(Updates)
		*b.Updates = d.updates()
	}
	if d.key("org_access") {
		b.OrgAccess = list(d, (*scanner).orgAccess)
	}
	d.objEnd()
	return b
}

// identity decodes an Identity.
func (d *scanner) identity() (v Identity) {
	d.objStart()
	if d.key("node_id") {
		v.NodeID = d.str()
	}
	if d.key("name") {
		v.Name = d.str()
	}
	if d.key("region") {
		v.Region = d.str()
	}
	if d.key("endpoints") {
		v.Endpoints = stringList(d, &d.strs)
	}
	if d.key("noise_public_key") {
		v.NoisePublicKey = d.bytes()
	}
	if d.key("identity_public_key") {
		v.IdentityPublicKey = d.bytes()
	}
	if d.key("identity_status") {
		v.IdentityStatus = domain.IdentityStatus(d.str())
	}
	if d.key("organizations") {
		v.Organizations = stringList(d, &d.strs)
	}
	d.objEnd()
	return v
}

// membership decodes a Membership.
func (d *scanner) membership() (v Membership) {
	d.objStart()
	if d.key("cluster_id") {
		v.ClusterID = d.str()
	}
	if d.key("status") {
		v.Status = domain.MembershipStatus(d.str())
	}
	if d.key("group_path") {
		v.GroupPath = stringList(d, &d.strs)
	}
	if d.key("authority_state") {
		v.AuthorityState = domain.PartitionState(d.str())
	}
	d.objEnd()
	return v
}

// roleGrant decodes a RoleGrant.
func (d *scanner) roleGrant() (v RoleGrant) {
	d.objStart()
	if d.key("role") {
		v.Role = domain.Role(d.str())
	}
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("policy") {
		v.Policy = d.raw()
	}
	d.objEnd()
	return v
}

// revocations decodes the Revocations.
func (d *scanner) revocations() (v Revocations) {
	d.objStart()
	if d.key("node_ids") {
		v.NodeIDs = stringList(d, &d.strs)
	}
	if d.key("key_fingerprints") {
		v.KeyFingerprints = stringList(d, &d.strs)
	}
	d.objEnd()
	return v
}

// storageEndpoint decodes a StorageEndpoint.
func (d *scanner) storageEndpoint() (v StorageEndpoint) {
	d.objStart()
	if d.key("node_id") {
		v.NodeID = d.str()
	}
	if d.key("endpoints") {
		v.Endpoints = stringList(d, &d.strs)
	}
	d.objEnd()
	return v
}

// caRoot decodes a CARoot.
func (d *scanner) caRoot() (v CARoot) {
	d.objStart()
	if d.key("key_id") {
		v.KeyID = d.str()
	}
	if d.key("status") {
		v.Status = d.str()
	}
	if d.key("certificate") {
		v.Certificate = d.bytes()
	}
	d.objEnd()
	return v
}

// telemetryFlag decodes a TelemetryFlag.
func (d *scanner) telemetryFlag() (v TelemetryFlag) {
	d.objStart()
	if d.key("scope") {
		v.Scope = d.str()
	}
	if d.key("target_id") {
		v.TargetID = d.str()
	}
	if d.key("name") {
		v.Name = d.str()
	}
	if d.key("enabled") {
		v.Enabled = d.bool()
	}
	d.objEnd()
	return v
}

// gossipKey decodes a GossipKey.
func (d *scanner) gossipKey() (v GossipKey) {
	d.objStart()
	if d.key("pool") {
		v.Pool = d.str()
	}
	if d.key("key_id") {
		v.KeyID = d.str()
	}
	if d.key("key") {
		v.Key = d.bytes()
	}
	d.objEnd()
	return v
}

// peer decodes a Peer.
func (d *scanner) peer() (v Peer) {
	d.objStart()
	if d.key("node_id") {
		v.NodeID = d.str()
	}
	if d.key("noise_public_key") {
		v.NoisePublicKey = d.bytes()
	}
	if d.key("identity_public_key") {
		v.IdentityPublicKey = d.bytes()
	}
	if d.key("endpoints") {
		v.Endpoints = stringList(d, &d.strs)
	}
	if d.key("region") {
		v.Region = d.str()
	}
	if d.key("relation") {
		v.Relation = d.str()
	}
	if d.key("role_hints") {
		v.RoleHints = stringList(d, &d.roles)
	}
	if d.key("organizations") {
		v.Organizations = stringList(d, &d.strs)
	}
	d.objEnd()
	return v
}

// entryPolicy decodes an EntryPolicy.
func (d *scanner) entryPolicy() (v EntryPolicy) {
	d.objStart()
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("policy") {
		v.Policy = d.raw()
	}
	d.objEnd()
	return v
}

// tokenValidation decodes a TokenValidation.
func (d *scanner) tokenValidation() (v TokenValidation) {
	d.objStart()
	if d.key("issuer") {
		v.Issuer = d.str()
	}
	if d.key("audiences") {
		v.Audiences = stringList(d, &d.strs)
	}
	if d.key("keys") {
		v.Keys = list(d, (*scanner).tokenKey)
	}
	if d.key("max_clock_skew_secs") {
		v.MaxClockSkewSecs = d.int()
	}
	d.objEnd()
	return v
}

// tokenKey decodes a TokenKey.
func (d *scanner) tokenKey() (v TokenKey) {
	d.objStart()
	if d.key("key_id") {
		v.KeyID = d.str()
	}
	if d.key("algorithm") {
		v.Algorithm = d.str()
	}
	if d.key("public_key") {
		v.PublicKey = d.bytes()
	}
	d.objEnd()
	return v
}

// serviceConfig decodes a ServiceConfig.
func (d *scanner) serviceConfig() (v ServiceConfig) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("type") {
		v.Type = d.str()
	}
	if d.key("instance") {
		v.Instance = d.str()
	}
	if d.key("role") {
		v.Role = domain.Role(d.str())
	}
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("config") {
		v.Config = d.raw()
	}
	if d.key("resource_refs") {
		v.ResourceRefs = stringList(d, &d.strs)
	}
	if d.key("connector_refs") {
		v.ConnectorRefs = stringList(d, &d.strs)
	}
	d.objEnd()
	return v
}

// resourceRef decodes a ResourceRef.
func (d *scanner) resourceRef() (v ResourceRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("protocol") {
		v.Protocol = d.str()
	}
	if d.key("address") {
		v.Address = d.str()
	}
	if d.key("port") {
		v.Port = d.int()
	}
	if d.key("egress_pool_id") {
		v.EgressPoolID = d.str()
	}
	if d.key("credential_ref") {
		v.CredentialRef = d.str()
	}
	d.objEnd()
	return v
}

// connectorRef decodes a ConnectorRef.
func (d *scanner) connectorRef() (v ConnectorRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("type") {
		v.Type = d.str()
	}
	if d.key("endpoint") {
		v.Endpoint = d.str()
	}
	if d.key("credential_ref") {
		v.CredentialRef = d.str()
	}
	d.objEnd()
	return v
}

// orgRef decodes an OrgRef.
func (d *scanner) orgRef() (v OrgRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("name") {
		v.Name = d.str()
	}
	d.objEnd()
	return v
}

// egressPoolRef decodes an EgressPoolRef.
func (d *scanner) egressPoolRef() (v EgressPoolRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("name") {
		v.Name = d.str()
	}
	d.objEnd()
	return v
}

// updates decodes the Updates.
func (d *scanner) updates() (v Updates) {
	d.objStart()
	if d.key("release_roots") {
		v.ReleaseRoots = d.releaseRoots()
	}
	if d.key("desired") {
		v.Desired = list(d, (*scanner).desiredVersion)
	}
	if d.key("blocklist") {
		v.Blocklist = list(d, (*scanner).blockedVersion)
	}
	if d.key("mirrors") {
		v.Mirrors = list(d, (*scanner).storageEndpoint)
	}
	if d.key("mirror") {
		v.Mirror = list(d, (*scanner).desiredVersion)
	}
	d.objEnd()
	return v
}

// releaseRoots decodes a ReleaseRoots.
func (d *scanner) releaseRoots() (v ReleaseRoots) {
	d.objStart()
	if d.key("version") {
		v.Version = d.uint()
	}
	if d.key("threshold") {
		v.Threshold = d.int()
	}
	if d.key("keys") {
		v.Keys = list(d, (*scanner).bytes)
	}
	d.objEnd()
	return v
}

// desiredVersion decodes a DesiredVersion.
func (d *scanner) desiredVersion() (v DesiredVersion) {
	d.objStart()
	if d.key("product") {
		v.Product = d.str()
	}
	if d.key("version") {
		v.Version = d.str()
	}
	if d.key("manifest_digest") {
		v.ManifestDigest = d.str()
	}
	if d.key("rollout_id") {
		v.RolloutID = d.str()
	}
	if d.key("wave") {
		v.Wave = d.int()
	}
	if d.key("allow_downgrade") {
		v.AllowDowngrade = d.bool()
	}
	if d.key("deadline_seconds") {
		v.DeadlineSeconds = d.int()
	}
	d.objEnd()
	return v
}

// blockedVersion decodes a BlockedVersion.
func (d *scanner) blockedVersion() (v BlockedVersion) {
	d.objStart()
	if d.key("product") {
		v.Product = d.str()
	}
	if d.key("version") {
		v.Version = d.str()
	}
	d.objEnd()
	return v
}

// orgAccess decodes an OrgAccess.
func (d *scanner) orgAccess() (v OrgAccess) {
	d.objStart()
	if d.key("organization_id") {
		v.OrganizationID = d.str()
	}
	if d.key("endpoints") {
		v.Endpoints = list(d, (*scanner).orgEndpointRef)
	}
	if d.key("resources") {
		v.Resources = list(d, (*scanner).orgResourceRef)
	}
	if d.key("policies") {
		v.Policies = list(d, (*scanner).orgPolicyRef)
	}
	d.objEnd()
	return v
}

// orgEndpointRef decodes an OrgEndpointRef.
func (d *scanner) orgEndpointRef() (v OrgEndpointRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("name") {
		v.Name = d.str()
	}
	if d.key("kind") {
		v.Kind = d.str()
	}
	if d.key("protocol") {
		v.Protocol = d.str()
	}
	d.objEnd()
	return v
}

// orgResourceRef decodes an OrgResourceRef.
func (d *scanner) orgResourceRef() (v OrgResourceRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("protocol") {
		v.Protocol = d.str()
	}
	if d.key("address") {
		v.Address = d.str()
	}
	if d.key("port") {
		v.Port = d.int()
	}
	if d.key("endpoint_id") {
		v.EndpointID = d.str()
	}
	d.objEnd()
	return v
}

// orgPolicyRef decodes an OrgPolicyRef.
func (d *scanner) orgPolicyRef() (v OrgPolicyRef) {
	d.objStart()
	if d.key("id") {
		v.ID = d.str()
	}
	if d.key("subjects") {
		v.Subjects = stringList(d, &d.strs)
	}
	if d.key("resource_ids") {
		v.ResourceIDs = stringList(d, &d.strs)
	}
	if d.key("endpoint_ids") {
		v.EndpointIDs = stringList(d, &d.strs)
	}
	if d.key("window_start") {
		v.WindowStart = d.int()
	}
	if d.key("window_end") {
		v.WindowEnd = d.int()
	}
	if d.key("require_mfa") {
		v.RequireMFA = d.bool()
	}
	d.objEnd()
	return v
}

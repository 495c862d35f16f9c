package authority

// CheckLeader reports, without a quorum round trip, whether this authority
// leads the group with a claimed fence: nil, or a not_leader error naming the
// leader's API address, or no_quorum while leadership is being taken or no
// leader is known.
//
// The HTTP layer calls it before it spends anything single-use on a request
// that only the leader executes (a step-up grant): a follower answers
// not_leader and the client's retry on the leader still finds the grant. It
// is advisory: Fenced confirms leadership with a quorum again.
func (a *Authority) CheckLeader() error {
	_, err := a.ensureLeader()
	return err
}

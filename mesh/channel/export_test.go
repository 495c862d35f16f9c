package channel

// cancelTestHandshake forgets an in-flight handshake so a test can start
// another at once.
func (e *Endpoint) cancelTestHandshake(k Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.peerLocked(k, false); p != nil {
		e.cancelHandshakeLocked(p)
	}
}

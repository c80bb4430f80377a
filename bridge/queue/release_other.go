//go:build !linux

package queue

// ReleaseMemory does nothing outside Linux.
func (o *Outbox) ReleaseMemory() error { return nil }

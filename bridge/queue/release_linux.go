//go:build linux

package queue

import (
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// ReleaseMemory drops this process's page-table entries for the store's
// memory map (madvise MADV_DONTNEED). bbolt reads the file through a
// read-only shared mapping, so every page it ever read stays counted in the
// process's RSS although it is only clean page cache. After this call the
// kernel still caches the pages; the next read of one faults it back in
// cheaply. It runs inside a read transaction, which holds bbolt's mmap lock,
// so the mapping cannot move meanwhile. Safe for concurrent use.
func (o *Outbox) ReleaseMemory() error {
	return o.db.View(func(tx *bolt.Tx) error {
		size := tx.Size()
		if size <= 0 {
			return nil
		}
		info := o.db.Info()
		// info.Data is the address of bbolt's mmap (not Go-managed memory).
		base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
		return unix.Madvise(unsafe.Slice((*byte)(base), size), unix.MADV_DONTNEED)
	})
}

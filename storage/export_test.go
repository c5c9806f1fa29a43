package storage

import "time"

// SetLeafFlushEntries sets how many entries in memory make a leaf-hash
// run, so that tests of other packages exercise flushes and merges; call
// it before opening stores, and the function it returns after closing
// them.
func SetLeafFlushEntries(n uint64) (restore func()) {
	old := leafFlushEntries
	leafFlushEntries = n
	return func() { leafFlushEntries = old }
}

// SetLeafBacklog sets how many runs' worth of entries the leaf-hash
// index's maps may hold before Commit waits, how long it waits, and how
// long the index's worker waits after a failure; call it before opening
// stores, and the function it returns after closing them.
func SetLeafBacklog(runs uint64, wait, retry time.Duration) (restore func()) {
	oldRuns, oldWait, oldRetry := leafBacklogRuns, leafBacklogWait, leafRetry
	leafBacklogRuns, leafBacklogWait, leafRetry = runs, wait, retry
	return func() { leafBacklogRuns, leafBacklogWait, leafRetry = oldRuns, oldWait, oldRetry }
}

// RebuiltLeafIndex reports whether Open rebuilt a damaged leaf-hash index
// from the entries: a crash or fault test that finds it set has found
// the index damaged.
func (s *Store) RebuiltLeafIndex() bool { return s.rebuiltIndex }

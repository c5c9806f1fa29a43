package storage

// SetLeafFlushEntries sets how many entries in memory make a leaf-hash
// run, so that tests of other packages exercise flushes and merges; call
// it before opening stores, and the function it returns after closing
// them.
func SetLeafFlushEntries(n uint64) (restore func()) {
	old := leafFlushEntries
	leafFlushEntries = n
	return func() { leafFlushEntries = old }
}

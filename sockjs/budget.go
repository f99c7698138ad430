package sockjs

import (
	"errors"
	"io"
	"sync/atomic"
)

// DefaultBodyBudget is NodeConfig.BodyBudget's default.
const DefaultBodyBudget = 64 << 20

// errOverBudget: reading a body would pass the node's BodyBudget.
var errOverBudget = errors.New("sockjs: node body budget spent")

// byteBudget counts bytes a node holds for its clients against a bound.
// Safe for concurrent use.
type byteBudget struct {
	max  int64 // <= 0: no bound
	used atomic.Int64
}

// take reserves n bytes, or reports false (reserving nothing) when that
// would pass the bound.
func (b *byteBudget) take(n int64) bool {
	if used := b.used.Add(n); b.max > 0 && used > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// budgetReader charges what it reads to a budget; release gives it all
// back once the body has been handled.
type budgetReader struct {
	r     io.Reader
	b     *byteBudget
	taken int64
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		if !br.b.take(int64(n)) {
			return 0, errOverBudget
		}
		br.taken += int64(n)
	}
	return n, err
}

func (br *budgetReader) release() {
	br.b.give(br.taken)
	br.taken = 0
}

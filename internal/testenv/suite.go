package testenv

import "testing"

// Cases is a conformance suite (storetest, bustest): named tests, each run
// against a fixture F such as a store or a set of buses sharing one backend.
type Cases[F any] []struct {
	Name string
	Test func(t *testing.T, f F)
}

// RunCases runs every case as a subtest of t with its own fixture from
// newFixture, in parallel with the other cases when parallel is set.
func RunCases[F any](t *testing.T, parallel bool, newFixture func(t *testing.T) F, cases Cases[F]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if parallel {
				t.Parallel()
			}
			c.Test(t, newFixture(t))
		})
	}
}

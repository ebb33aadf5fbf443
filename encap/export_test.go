package encap

// The internals that the external tests hold to a reference.
var (
	OnesSum = onesSum
	Fold    = fold
)

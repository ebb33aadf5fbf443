package encap

// The internals that the external tests hold to a reference.
var (
	OnesSum = onesSum
	Fold    = fold
)

// Peers is how many sources an Opener keeps state for.
func (o *Opener) Peers() int { return len(o.peers) }

// Package stream defines the payload that the test programs mcsend and mcrecv exchange, and
// the bookkeeping a receiver needs to judge a stream of them: which sequence numbers arrived,
// how many twice or late, and how long they took.
//
// A payload is self-describing and checkable byte for byte:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  sequence number (big endian)                  |
//	|                                                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            send time, unix nanoseconds (big endian)            |
//	|                                                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   pattern: word k (offset 16+8k) = seed(seq) + k*step, little   |
//	|   endian 64-bit words, the last one cut to the payload length   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// seed is the splitmix64 finalizer of the sequence number, so two payloads of different
// sequence numbers differ in every word of their pattern, and step is odd, so no two words
// of one payload are equal. The whole layout is fixed: a receiver needs nothing but the
// bytes to verify them.
//
// The package has no dependencies beyond the standard library, so an unmodified-application
// stand-in like mcsend can use it without knowing anything of mctun.
package stream

// Package kernelpath forwards the plain tunnel inside the kernel: eBPF programs on the
// interfaces (TC, attached with tcx), their maps, and the Go that loads, fills and reads
// them. User space keeps control, counting, what the programs hand it, and the
// authenticated form; the vocabulary is datapath's.
//
// The sender side (Sender, bpf/sender.c) runs on the source interface's egress, and on the
// TUN's of a host that is a member too:
//
//	classify -> encapsulate -> fan out to members
//
// A group larger than one pass's copies (passCopies) is fanned out in passes, the packet
// coming back through the source interface's ingress for each next one.
//
// The receiver side (Receiver, bpf/receiver.c) runs on the ingress of the interfaces the
// tunnel arrives on:
//
//	receive -> decapsulate -> validate -> write to TUN
//
// Each program's flow is written out at the top of its C file. Both take only what they can
// do in place, and hand everything else on unchanged to the user-space paths of package
// datapath, counted by why: the two paths make one behaviour. The sender side hands its
// share over through a TUN of its own (Handoff), the receiver side through the tunnel's
// socket. They share a sequence counter
// per group (Sender.Sequence; datapath.Sender.ShareSequences) and an account per flow
// (Receiver.Observe; datapath.Receiver.ShareFlows), and the daemon adds the programs'
// counters to user space's for status, stats and metrics.
//
// The programs are built from bpf/ by bpf2go (go generate, make generate); the objects and
// their Go bindings are committed. Their tests run them with BPF_PROG_TEST_RUN on hand-made
// packets, as root.
package kernelpath

// who begins what the kernel path logs of the host's events (nlevents).
const who = "kernel path"

package kernelpath

// The programs are compiled with clang and embedded with bpf2go; the objects and their Go
// bindings are committed, so go build needs no clang. make generate rebuilds them (clang,
// llvm-strip and libbpf's headers from Debian's clang, llvm and libbpf-dev), and CI checks
// that the committed ones are what the sources give. One little-endian object serves amd64
// and arm64 alike.
//
//go:generate go tool bpf2go -cc clang -strip llvm-strip -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -type sender_config -type group_key -type group_route -type fanout_entry -type member_count -type group_count -type sender_path -type route_state -type dump_meta sender bpf/sender.c
//go:generate go tool bpf2go -cc clang -strip llvm-strip -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -type receiver_config -type flow_key -type flow -type account_args -type account_rec -type receiver_path -type reason -type reports -type join_prefix receiver bpf/receiver.c

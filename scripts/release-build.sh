# Sourced by scripts/package.sh and Benchmarks/footprint.sh: the one way the packaged binaries are
# built. Release, Swift runtime linked in, into .build/release-static. Linked by lld with packed
# relative relocations (DT_RELR, glibc 2.36: Debian 12): ndp-proxy's 2 MB of R_X86_64_RELATIVE
# records become a few KiB, which the loader no longer reads at every start
# (Benchmarks/README.md, footprint: 2.2 MB less resident memory for ndp-proxy).
release_scratch=.build/release-static
release_flags=(-c release --static-swift-stdlib --scratch-path "$release_scratch"
               -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --gc-sections)
release_build() {   # PRODUCT...
    local p
    for p in "$@"; do swift build "${release_flags[@]}" --product "$p"; done
}
release_bin_path() { swift build "${release_flags[@]}" --show-bin-path; }

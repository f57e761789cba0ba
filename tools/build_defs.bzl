"""Code generation rules for the offline build: protoc + grpc_cpp_plugin and rpcgen.

Debian ships protoc, /usr/bin/grpc_cpp_plugin and rpcgen; we call them from
genrules instead of depending on rules_proto/rules_cc repositories that
Bazel would otherwise download.
"""

def lw_proto_library(
        name,
        srcs,
        deps = [],
        proto_deps = [],
        grpc = True,
        testonly = False,
        visibility = None):
    """cc_library for .proto files laid out under this package.

    `srcs` are paths relative to the package (e.g. "lockwarden/v1/lock.proto");
    generated headers are included by that same path. Files in `srcs` may
    import each other by that path (one protoc run compiles them all).

    `proto_deps` are other lw_proto_library targets whose .proto files the
    `srcs` import (e.g. "//proto:lockwarden_v1", imported as
    "lockwarden/v1/common.proto"); they become cc deps as well. `deps` are
    extra cc deps. Also defines `<name>_srcs`, a filegroup of the .proto
    files, which is what `proto_deps` uses.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs,
        testonly = testonly,
        visibility = visibility,
    )

    # Every package holding imported .proto files is a protoc root, so an
    # import names a file by its path inside its package.
    roots = [native.package_name()]
    for dep in proto_deps:
        pkg = native.package_name() if dep.startswith(":") else Label(dep).package
        if pkg not in roots:
            roots.append(pkg)
    cmd = "protoc -I/usr/include"
    for root in roots:
        cmd += " -I" + (root if root else ".")
    cmd += " --cpp_out=$(RULEDIR)"
    if grpc:
        cmd += " --grpc_out=$(RULEDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"

    # Only this target's files are compiled; the deps' are inputs for imports.
    cmd += "".join([" $(location %s)" % src for src in srcs])
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in proto_deps],
        outs = outs,
        cmd = cmd,
        testonly = testonly,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + proto_deps + ["@system//:grpc" if grpc else "@system//:protobuf"],
        testonly = testonly,
        visibility = visibility,
    )

def lw_rpcgen_library(name, src, deps = [], visibility = None):
    """cc_library with the XDR routines rpcgen generates from one .x file.

    The .x file is copied next to its outputs first so that the generated
    `#include "foo.h"` resolves.
    """
    base = src[:-len(".x")]
    hdr = base + ".h"
    xdr = base + "_xdr.c"
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = [hdr, xdr],
        cmd = " && ".join([
            "cp $< $(RULEDIR)/gen_" + src.split("/")[-1],
            "cd $(RULEDIR)",
            "rpcgen -h -o {h} gen_{x}".format(h = hdr.split("/")[-1], x = src.split("/")[-1]),
            "rpcgen -c -o {c} gen_{x}".format(c = xdr.split("/")[-1], x = src.split("/")[-1]),
            "sed -i 's|#include \"gen_{b}.h\"|#include \"{b}.h\"|' {c}".format(b = base.split("/")[-1], c = xdr.split("/")[-1]),
            "rm gen_" + src.split("/")[-1],
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [xdr],
        hdrs = [hdr],
        includes = ["."],
        copts = [
            "-I/usr/include/tirpc",
            "-Wno-unused-variable",
            "-Wno-unused-parameter",
        ],
        deps = deps + ["@system//:tirpc"],
        visibility = visibility,
    )

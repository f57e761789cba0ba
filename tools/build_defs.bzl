"""Code generation rules for the offline build: protoc + grpc_cpp_plugin and rpcgen.

Debian ships protoc, /usr/bin/grpc_cpp_plugin and rpcgen; we call them from
genrules instead of depending on rules_proto/rules_cc repositories that
Bazel would otherwise download.
"""

def lw_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """cc_library for .proto files laid out under this package.

    `srcs` are paths relative to the package (e.g. "lockwarden/v1/lock.proto");
    generated headers are included by that same path.
    """
    outs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    cmd = "protoc -I/usr/include -I{pkg} --cpp_out=$(RULEDIR)".format(pkg = pkg)
    if grpc:
        cmd += " --grpc_out=$(RULEDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin"
    cmd += " $(SRCS)"
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in []],
        outs = outs,
        cmd = cmd,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["@system//:grpc" if grpc else "@system//:protobuf"],
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

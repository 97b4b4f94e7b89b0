#!/usr/bin/env python3
"""Prints libm_exp.rs's TABLE: for i in 0..32, the bits of 2^(i/32) as the
nearest double (computed to 60 digits), less i << 47 (so that adding k << 47
for k = 32·e + i gives 2^(k/32)'s exponent), and the constants."""
from decimal import Decimal, getcontext
import struct

getcontext().prec = 60
ln2 = Decimal(2).ln()


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


tab = [(bits(float((Decimal(i) / 32 * ln2).exp())) - (i << 47)) % (1 << 64) for i in range(32)]
print("const TABLE: [u64; 32] = [" + ", ".join("0x%016x" % t for t in tab) + "];")
for name, h in [("INV_LN2_N", "0x1.71547652b82fep+5"), ("SHIFT", "0x1.8p+52"), ("C0", "0x1.c6af84b912394p-20"),
                ("C1", "0x1.ebfce50fac4f3p-13"), ("C2", "0x1.62e42ff0c52d6p-6")]:
    print("const %s: u64 = 0x%016x; // %s" % (name, bits(float.fromhex(h)), h))

"""Emulated capture cards (COMBO6, DAG) in front of a link: their units run over each raw batch
in C (emu.c, this package's cffi module), and only the packets some software node needs cross
the emulated bus.

    translate  BPF conditions -> the header units' matches (CAM entries, bit-mask filters)
    units      the units both cards have (samplers, counter sets, the header filter base)
    card       the card as a packet source with hardware; configurations compiled for emu.c
    backend    the backend descriptor (replay a trace through the card, or sit on a live link)
    combo6     the COMBO6 / SCAMPI adapter: HFE, LUP, SAU, STU, PCK, TSU, DRAM
    dag        a DAG card: ERF clock, loss counter, DSM classifier, steering hashes, ERF writer
"""
from mapi import native

from ._emu import ffi, lib

native.bind_engine(ffi, lib, __name__)

;; A sandboxed SCAMPI function library (the ABI: docs/jobcontrol.md).
;;
;;   WASM_TCP80    a filter equal to tcpdump's `tcp port 80` on Ethernet (link type 1): IPv6 with
;;                 TCP as next header, or IPv4 TCP that is not a later fragment, with source or
;;                 destination port 80 -- the checks of `tcpdump -d 'tcp port 80'`, in order; a
;;                 read past the captured bytes rejects the packet, as BPF does.
;;   WASM_PACKETS  counts the packets that reach it (its result).
;;
;; Built to tcp80.wasm by build.py (make wasm-example); load it with
;;   mapi.load_library("tcp80.wasm", kind="sandboxed")
(module
  (memory (export "memory") 1)
  (global $packets (mut i64) (i64.const 0))
  (global $passed (mut i64) (i64.const 0))

  (func (export "scampi_abi_version") (result i32) (i32.const 2))
  (func (export "scampi_snaplen") (result i32) (i32.const 80))

  ;; batches go after the first page; grow memory to fit `bytes`
  (func (export "scampi_buffer") (param $bytes i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.shr_u (i32.add (i32.add (local.get $bytes) (i32.const 65536))
                                          (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.lt_s (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const 0))
              (then (unreachable)))))
    (i32.const 65536))

  ;; batch at $at (ABI version 2): u32 n, i32 linktype, u32 snap, u32 stride, then the offsets
  ;; (from $at) of the caplen column (u32 n) at 16, of the wirelen, index and ts columns (not
  ;; asked for: no scampi_fields) at 20, 24, 28, of the keep area (n u32) at 32 and of the
  ;; packets' slots at 36: packet j's first snap (80) bytes at data_off + j * stride.
  ;;
  ;; `tcp port 80` on the Ethernet frame at $p with $len captured bytes, with one branch per
  ;; packet, IPv4 or not (most traffic takes the same way: predicted), and none after it (which
  ;; way a packet goes further is data, so branches would be mispredicted): every field of that
  ;; branch of `tcpdump -d 'tcp port 80'` is read (at most 78 bytes from $p: within its 80-byte
  ;; slot, past the packet's own bytes when it is short) and the verdict is the AND of the
  ;; comparisons with the checks that each field was captured -- a field past $len rejects the
  ;; packet, as in BPF.  Fields are read four bytes at a time, little-endian (wasm's order), and
  ;; compared with byte-swapped constants: 0x0008 is ethertype 08 00 (IPv4), 0xdd86 is 86 dd
  ;; (IPv6), 0x5000 is port 00 50 (80).
  (func (export "scampi_filter_WASM_TCP80") (param $at i32) (param $n i32) (result i32)
    (local $cap i32) (local $cap0 i32) (local $end i32) (local $keep i32) (local $kp i32)
    (local $p i32) (local $len i32) (local $w12 i32) (local $w20 i32) (local $x i32)
    (local $ports i32) (local $pass i32)
    (if (i32.ne (i32.load offset=4 (local.get $at)) (i32.const 1)) (then (return (i32.const 0))))
    (if (i32.eqz (local.get $n)) (then (return (i32.const 0))))
    ;; the slots are snap (80) bytes rounded up to 8: 80, a constant of the loop
    (if (i32.ne (i32.load offset=12 (local.get $at)) (i32.const 80)) (then (unreachable)))
    (local.set $cap0 (i32.add (local.get $at) (i32.load offset=16 (local.get $at))))
    (local.set $keep (i32.add (local.get $at) (i32.load offset=32 (local.get $at))))
    (local.set $p (i32.add (local.get $at) (i32.load offset=36 (local.get $at))))
    (local.set $cap (local.get $cap0))
    (local.set $end (i32.add (local.get $cap0) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $kp (local.get $keep))
    (loop $next
      (local.set $len (i32.load (local.get $cap)))
      (local.set $w12 (i32.load offset=12 (local.get $p)))     ;; ethertype, byte 14
      (local.set $w20 (i32.load offset=20 (local.get $p)))     ;; bytes 20..23
      ;; the one branch: IPv4 or not (most packets take the same way, so it is predicted)
      (if (i32.eq (i32.and (local.get $w12) (i32.const 0xffff)) (i32.const 0x0008))
        (then
          ;; IPv4: protocol (byte 23) 6 and not a later fragment (the offset bits of bytes
          ;; 20-21), a port after the header of 4 * (byte 14 & 0xf) bytes
          (local.set $x (i32.and (i32.shr_u (local.get $w12) (i32.const 14)) (i32.const 0x3c)))
          (local.set $ports (i32.load offset=14 (i32.add (local.get $p) (local.get $x))))
          (local.set $pass
            (i32.and
              (i32.and (i32.ge_u (local.get $len) (i32.const 24))
                       (i32.eq (i32.and (local.get $w20) (i32.const 0xff00ff1f))
                               (i32.const 0x06000000)))
              (i32.and
                (i32.le_u (i32.add (local.get $x) (i32.const 16)) (local.get $len))
                (i32.or (i32.eq (i32.and (local.get $ports) (i32.const 0xffff))
                                (i32.const 0x5000))
                        (i32.and (i32.le_u (i32.add (local.get $x) (i32.const 18))
                                           (local.get $len))
                                 (i32.eq (i32.shr_u (local.get $ports) (i32.const 16))
                                         (i32.const 0x5000))))))))
        (else
          ;; IPv6: next header (byte 20) 6, a port at 54 or 56
          (local.set $ports (i32.load offset=54 (local.get $p)))
          (local.set $pass
            (i32.and
              (i32.and (i32.eq (i32.and (local.get $w12) (i32.const 0xffff)) (i32.const 0xdd86))
                       (i32.ge_u (local.get $len) (i32.const 56)))
              (i32.and
                (i32.eq (i32.and (local.get $w20) (i32.const 0xff)) (i32.const 6))
                (i32.or (i32.eq (i32.and (local.get $ports) (i32.const 0xffff))
                                (i32.const 0x5000))
                        (i32.and (i32.ge_u (local.get $len) (i32.const 58))
                                 (i32.eq (i32.shr_u (local.get $ports) (i32.const 16))
                                         (i32.const 0x5000)))))))))
      ;; the position (i = cap's index) goes to the keep area either way; the keep pointer
      ;; moves on only for a packet that passes
      (i32.store (local.get $kp)
                 (i32.shr_u (i32.sub (local.get $cap) (local.get $cap0)) (i32.const 2)))
      (local.set $kp (i32.add (local.get $kp) (i32.shl (local.get $pass) (i32.const 2))))
      (local.set $p (i32.add (local.get $p) (i32.const 80)))
      (local.set $cap (i32.add (local.get $cap) (i32.const 4)))
      (br_if $next (i32.lt_u (local.get $cap) (local.get $end))))
    (local.set $n (i32.shr_u (i32.sub (local.get $kp) (local.get $keep)) (i32.const 2)))
    (global.set $passed (i64.add (global.get $passed) (i64.extend_i32_u (local.get $n))))
    (local.get $n))

  (func (export "scampi_result_WASM_TCP80") (result i64) (global.get $passed))

  (func (export "scampi_count_WASM_PACKETS") (param $at i32) (param $n i32) (result i32)
    (global.set $packets (i64.add (global.get $packets) (i64.extend_i32_u (local.get $n))))
    (local.get $n))

  (func (export "scampi_result_WASM_PACKETS") (result i64) (global.get $packets))
)

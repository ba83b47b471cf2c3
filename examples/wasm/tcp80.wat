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
  (global $region (mut i32) (i32.const 0))
  (global $region_bytes (mut i32) (i32.const 0))

  (func (export "scampi_abi_version") (result i32) (i32.const 1))
  (func (export "scampi_snaplen") (result i32) (i32.const 128))

  ;; batches go after the first page; grow memory to fit `bytes`
  (func (export "scampi_buffer") (param $bytes i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.shr_u (i32.add (i32.add (local.get $bytes) (i32.const 65536))
                                          (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then (if (i32.lt_s (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const 0))
              (then (unreachable)))))
    (i32.const 65536))

  ;; big-endian 16-bit load at packet offset $k, or -1 past the captured length
  (func $ldh (param $p i32) (param $len i32) (param $k i32) (result i32)
    (if (result i32) (i32.gt_u (i32.add (local.get $k) (i32.const 2)) (local.get $len))
      (then (i32.const -1))
      (else (i32.or (i32.shl (i32.load8_u (i32.add (local.get $p) (local.get $k))) (i32.const 8))
                    (i32.load8_u offset=1 (i32.add (local.get $p) (local.get $k)))))))

  (func $ldb (param $p i32) (param $len i32) (param $k i32) (result i32)
    (if (result i32) (i32.ge_u (local.get $k) (local.get $len))
      (then (i32.const -1))
      (else (i32.load8_u (i32.add (local.get $p) (local.get $k))))))

  ;; `tcp port 80` on one Ethernet frame at $p with $len captured bytes
  (func $tcp80 (param $p i32) (param $len i32) (result i32)
    (local $t i32) (local $x i32)
    (local.set $t (call $ldh (local.get $p) (local.get $len) (i32.const 12)))
    (if (i32.eq (local.get $t) (i32.const 0x86dd))
      (then
        (if (i32.ne (call $ldb (local.get $p) (local.get $len) (i32.const 20)) (i32.const 6))
          (then (return (i32.const 0))))
        (if (i32.eq (call $ldh (local.get $p) (local.get $len) (i32.const 54)) (i32.const 80))
          (then (return (i32.const 1))))
        (return (i32.eq (call $ldh (local.get $p) (local.get $len) (i32.const 56)) (i32.const 80)))))
    (if (i32.ne (local.get $t) (i32.const 0x0800)) (then (return (i32.const 0))))
    (if (i32.ne (call $ldb (local.get $p) (local.get $len) (i32.const 23)) (i32.const 6))
      (then (return (i32.const 0))))
    (local.set $t (call $ldh (local.get $p) (local.get $len) (i32.const 20)))
    (if (i32.lt_s (local.get $t) (i32.const 0)) (then (return (i32.const 0))))
    (if (i32.and (local.get $t) (i32.const 0x1fff)) (then (return (i32.const 0))))
    (local.set $x (call $ldb (local.get $p) (local.get $len) (i32.const 14)))
    (if (i32.lt_s (local.get $x) (i32.const 0)) (then (return (i32.const 0))))
    (local.set $x (i32.shl (i32.and (local.get $x) (i32.const 0xf)) (i32.const 2)))
    (if (i32.eq (call $ldh (local.get $p) (local.get $len) (i32.add (local.get $x) (i32.const 14)))
                (i32.const 80))
      (then (return (i32.const 1))))
    (i32.eq (call $ldh (local.get $p) (local.get $len) (i32.add (local.get $x) (i32.const 16)))
            (i32.const 80)))

  ;; batch at $at: u32 n, i32 linktype, u32 snap, u32 data_off, n records of 24 bytes
  ;; {u32 off, u32 caplen, u32 wirelen, u32 index, i64 ts}, then the keep area (n u32)
  (func (export "scampi_filter_WASM_TCP80") (param $at i32) (param $n i32) (result i32)
    (local $i i32) (local $rec i32) (local $keep i32) (local $k i32)
    (if (i32.ne (i32.load offset=4 (local.get $at)) (i32.const 1)) (then (return (i32.const 0))))
    (local.set $rec (i32.add (local.get $at) (i32.const 16)))
    (local.set $keep (i32.add (local.get $rec) (i32.mul (local.get $n) (i32.const 24))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (call $tcp80 (i32.add (local.get $at) (i32.load (local.get $rec)))
                         (i32.load offset=4 (local.get $rec)))
          (then
            (i32.store (i32.add (local.get $keep) (i32.shl (local.get $k) (i32.const 2)))
                       (local.get $i))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))))
        (local.set $rec (i32.add (local.get $rec) (i32.const 24)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $passed (i64.add (global.get $passed) (i64.extend_i32_u (local.get $k))))
    (local.get $k))

  (func (export "scampi_result_WASM_TCP80") (result i64) (global.get $passed))

  (func (export "scampi_count_WASM_PACKETS") (param $at i32) (param $n i32) (result i32)
    (global.set $packets (i64.add (global.get $packets) (i64.extend_i32_u (local.get $n))))
    (local.get $n))

  (func (export "scampi_result_WASM_PACKETS") (result i64) (global.get $packets))
)

;; Integer group quantization on WebAssembly SIMD (f32x4): the hot loop of `layerplan quant` for
;; int formats. Arithmetic is float32 throughout, exactly as the JS reference in quantize.ts:
;; t = x·inv (f32), q = nearest(t) (ties to even) + z, clamped, v = (q − z)·s (f32).
(module
  (memory (export "memory") 1)

  ;; Per group of `block` floats (block % 4 == 0, n % block == 0): absmax → outA (sym),
  ;; or min → outA and max → outB (asym).
  (func (export "group_range") (param $x i32) (param $n i32) (param $block i32) (param $outA i32) (param $outB i32) (param $asym i32)
    (local $p i32) (local $end i32) (local $gend i32) (local $v v128) (local $mn v128) (local $mx v128) (local $o i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $p (local.get $x))
    (block $done
      (loop $groups
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $gend (i32.add (local.get $p) (i32.shl (local.get $block) (i32.const 2))))
        (local.set $mn (f32x4.splat (f32.const inf)))
        (local.set $mx (f32x4.splat (f32.const -inf)))
        (loop $elems
          (local.set $v (v128.load (local.get $p)))
          (if (local.get $asym)
            (then
              (local.set $mn (f32x4.min (local.get $mn) (local.get $v)))
              (local.set $mx (f32x4.max (local.get $mx) (local.get $v))))
            (else
              (local.set $mx (f32x4.max (local.get $mx) (f32x4.abs (local.get $v))))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (br_if $elems (i32.lt_u (local.get $p) (local.get $gend))))
        (f32.store (i32.add (local.get $outB) (local.get $o))
          (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mx)) (f32x4.extract_lane 1 (local.get $mx)))
                   (f32.max (f32x4.extract_lane 2 (local.get $mx)) (f32x4.extract_lane 3 (local.get $mx)))))
        (f32.store (i32.add (local.get $outA) (local.get $o))
          (f32.min (f32.min (f32x4.extract_lane 0 (local.get $mn)) (f32x4.extract_lane 1 (local.get $mn)))
                   (f32.min (f32x4.extract_lane 2 (local.get $mn)) (f32x4.extract_lane 3 (local.get $mn)))))
        (local.set $o (i32.add (local.get $o) (i32.const 4)))
        (br $groups))))

  ;; Quantize → dequantize each group with its scale s, 1/s and zero point z (f32 arrays), writing
  ;; y when $y ≠ 0, and accumulating Σx², Σe², Σx·y, Σy², max|e| into out (5 f64).
  (func (export "quant_error") (param $x i32) (param $y i32) (param $n i32) (param $block i32)
        (param $scales i32) (param $invs i32) (param $zeros i32) (param $qmin f32) (param $qmax f32) (param $out i32)
    (local $p i32) (local $end i32) (local $gend i32) (local $g i32) (local $yp i32)
    (local $vs v128) (local $vi v128) (local $vz v128) (local $vlo v128) (local $vhi v128)
    (local $vx v128) (local $q v128) (local $v v128) (local $e v128)
    (local $as v128) (local $an v128) (local $ad v128) (local $ay v128) (local $am v128)
    (local $ss f64) (local $sn f64) (local $sd f64) (local $sy f64) (local $m f32)
    (local.set $vlo (f32x4.splat (local.get $qmin)))
    (local.set $vhi (f32x4.splat (local.get $qmax)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $p (local.get $x))
    (local.set $yp (local.get $y))
    (block $done
      (loop $groups
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $gend (i32.add (local.get $p) (i32.shl (local.get $block) (i32.const 2))))
        (local.set $vs (f32x4.splat (f32.load (i32.add (local.get $scales) (local.get $g)))))
        (local.set $vi (f32x4.splat (f32.load (i32.add (local.get $invs) (local.get $g)))))
        (local.set $vz (f32x4.splat (f32.load (i32.add (local.get $zeros) (local.get $g)))))
        (local.set $as (v128.const f32x4 0 0 0 0))
        (local.set $an (v128.const f32x4 0 0 0 0))
        (local.set $ad (v128.const f32x4 0 0 0 0))
        (local.set $ay (v128.const f32x4 0 0 0 0))
        (loop $elems
          (local.set $vx (v128.load (local.get $p)))
          (local.set $q (f32x4.add (f32x4.nearest (f32x4.mul (local.get $vx) (local.get $vi))) (local.get $vz)))
          (local.set $q (f32x4.min (f32x4.max (local.get $q) (local.get $vlo)) (local.get $vhi)))
          (local.set $v (f32x4.mul (f32x4.sub (local.get $q) (local.get $vz)) (local.get $vs)))
          (if (local.get $y) (then (v128.store (local.get $yp) (local.get $v))))
          (local.set $e (f32x4.sub (local.get $v) (local.get $vx)))
          (local.set $as (f32x4.add (local.get $as) (f32x4.mul (local.get $vx) (local.get $vx))))
          (local.set $an (f32x4.add (local.get $an) (f32x4.mul (local.get $e) (local.get $e))))
          (local.set $ad (f32x4.add (local.get $ad) (f32x4.mul (local.get $vx) (local.get $v))))
          (local.set $ay (f32x4.add (local.get $ay) (f32x4.mul (local.get $v) (local.get $v))))
          (local.set $am (f32x4.max (local.get $am) (f32x4.abs (local.get $e))))
          (local.set $p (i32.add (local.get $p) (i32.const 16)))
          (local.set $yp (i32.add (local.get $yp) (i32.const 16)))
          (br_if $elems (i32.lt_u (local.get $p) (local.get $gend))))
        ;; Per-group partial sums (f32, ≤ a few hundred terms) into f64 totals.
        (local.set $ss (f64.add (local.get $ss) (f64.promote_f32 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $as)) (f32x4.extract_lane 1 (local.get $as))) (f32.add (f32x4.extract_lane 2 (local.get $as)) (f32x4.extract_lane 3 (local.get $as)))))))
        (local.set $sn (f64.add (local.get $sn) (f64.promote_f32 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $an)) (f32x4.extract_lane 1 (local.get $an))) (f32.add (f32x4.extract_lane 2 (local.get $an)) (f32x4.extract_lane 3 (local.get $an)))))))
        (local.set $sd (f64.add (local.get $sd) (f64.promote_f32 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $ad)) (f32x4.extract_lane 1 (local.get $ad))) (f32.add (f32x4.extract_lane 2 (local.get $ad)) (f32x4.extract_lane 3 (local.get $ad)))))))
        (local.set $sy (f64.add (local.get $sy) (f64.promote_f32 (f32.add (f32.add (f32x4.extract_lane 0 (local.get $ay)) (f32x4.extract_lane 1 (local.get $ay))) (f32.add (f32x4.extract_lane 2 (local.get $ay)) (f32x4.extract_lane 3 (local.get $ay)))))))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $groups)))
    (local.set $m (f32.max (f32.max (f32x4.extract_lane 0 (local.get $am)) (f32x4.extract_lane 1 (local.get $am)))
                           (f32.max (f32x4.extract_lane 2 (local.get $am)) (f32x4.extract_lane 3 (local.get $am)))))
    (f64.store (local.get $out) (local.get $ss))
    (f64.store offset=8 (local.get $out) (local.get $sn))
    (f64.store offset=16 (local.get $out) (local.get $sd))
    (f64.store offset=24 (local.get $out) (local.get $sy))
    (f64.store offset=32 (local.get $out) (f64.promote_f32 (local.get $m)))))

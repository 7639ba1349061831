#!/usr/bin/env python3
"""A small ctypes wrapper over the CUDA driver API (libcuda.so.1).

No PyTorch and no cuda-python: just what the CUDA checks and benchmarks need
to allocate device memory, copy to and from it, make streams and contexts and
call a ``sqa-aot --target cuda`` library.

  from sqa_mlir import cuda_driver
  ok, why = cuda_driver.gpu_available()        # (False, "libcuda.so.1 ...") without a driver
  drv = cuda_driver.load()                     # or raises CUDAUnavailable(reason)
  ctx = drv.primary_context(0)                 # retained and made current on this thread
  q = cuda_driver.DeviceArray.from_numpy(drv, q_host)
  stream = drv.stream_create()
  ...  lib.forward_raw(q.ptr, k.ptr, v.ptr, out.ptr, B, S, T, stream)
  drv.stream_synchronize(stream)
  out_host = out.to_numpy()

Run as a script it says whether a GPU is usable (exit 0) or not (exit 1, with
the reason); ``--json`` prints {"available", "reason", "name", "chip", ...}.
That is how ``test/lit.cfg.py`` decides the ``cuda-gpu`` feature: in a
subprocess, so a misbehaving driver cannot take lit down.

This module imports only the standard library at import time (numpy only in
the DeviceArray helpers), so it can be run as a plain script.

Status: written against the CUDA driver API documentation; the no-driver
paths are exercised on the development machine (no GPU, no libcuda), the
device paths compile but have not been run on a GPU yet.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading
from typing import Optional, Tuple

# CUresult values used by name here (the rest come from cuGetErrorName).
CUDA_SUCCESS = 0
CUDA_ERROR_NOT_READY = 600

# CUdevice_attribute values (cuda.h).
CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97

# cuStreamCreate flags.
CU_STREAM_DEFAULT = 0
CU_STREAM_NON_BLOCKING = 1

# cuEventCreate flags.
CU_EVENT_DEFAULT = 0

LIBCUDA = "libcuda.so.1"


class CUDAUnavailable(RuntimeError):
    """No usable CUDA driver or device; str() is the reason."""


class CUDAError(RuntimeError):
    """A driver call returned an error."""

    def __init__(self, call: str, code: int, name: str, message: str = ""):
        self.call = call
        self.code = code
        self.name = name
        super().__init__(f"{call} failed: {name} ({code})"
                         + (f": {message}" if message else ""))


_c_int_p = ctypes.POINTER(ctypes.c_int)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)
_c_u64_p = ctypes.POINTER(ctypes.c_uint64)
_c_void_pp = ctypes.POINTER(ctypes.c_void_p)
_c_char_pp = ctypes.POINTER(ctypes.c_char_p)

# name -> (argtypes, alternative names tried in order). Every function
# returns a CUresult (int). CUdeviceptr is unsigned long long; CUcontext,
# CUstream and CUevent are opaque pointers; CUdevice is an int.
_SIGNATURES = {
    "cuInit": ([ctypes.c_uint], ()),
    "cuDriverGetVersion": ([_c_int_p], ()),
    "cuGetErrorName": ([ctypes.c_int, _c_char_pp], ()),
    "cuGetErrorString": ([ctypes.c_int, _c_char_pp], ()),
    "cuDeviceGetCount": ([_c_int_p], ()),
    "cuDeviceGet": ([_c_int_p, ctypes.c_int], ()),
    "cuDeviceGetName": ([ctypes.c_char_p, ctypes.c_int, ctypes.c_int], ()),
    "cuDeviceGetAttribute": ([_c_int_p, ctypes.c_int, ctypes.c_int], ()),
    "cuDeviceTotalMem": ([_c_size_p, ctypes.c_int], ("cuDeviceTotalMem_v2",)),
    "cuDevicePrimaryCtxRetain": ([_c_void_pp, ctypes.c_int], ()),
    "cuDevicePrimaryCtxRelease": ([ctypes.c_int], ("cuDevicePrimaryCtxRelease_v2",)),
    "cuCtxSetCurrent": ([ctypes.c_void_p], ()),
    "cuCtxGetCurrent": ([_c_void_pp], ()),
    "cuCtxSynchronize": ([], ()),
    "cuMemAlloc": ([_c_u64_p, ctypes.c_size_t], ("cuMemAlloc_v2",)),
    "cuMemFree": ([ctypes.c_uint64], ("cuMemFree_v2",)),
    "cuMemGetInfo": ([_c_size_p, _c_size_p], ("cuMemGetInfo_v2",)),
    "cuMemcpyHtoD": ([ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t], ("cuMemcpyHtoD_v2",)),
    "cuMemcpyDtoH": ([ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t], ("cuMemcpyDtoH_v2",)),
    "cuMemsetD8": ([ctypes.c_uint64, ctypes.c_ubyte, ctypes.c_size_t], ("cuMemsetD8_v2",)),
    "cuMemcpyDtoDAsync": ([ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p],
                          ("cuMemcpyDtoDAsync_v2",)),
    "cuStreamCreate": ([_c_void_pp, ctypes.c_uint], ()),
    "cuStreamSynchronize": ([ctypes.c_void_p], ()),
    "cuStreamDestroy": ([ctypes.c_void_p], ("cuStreamDestroy_v2",)),
    "cuEventCreate": ([_c_void_pp, ctypes.c_uint], ()),
    "cuEventRecord": ([ctypes.c_void_p, ctypes.c_void_p], ()),
    "cuEventSynchronize": ([ctypes.c_void_p], ()),
    "cuEventElapsedTime": ([ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p],
                           ()),
    "cuEventDestroy": ([ctypes.c_void_p], ("cuEventDestroy_v2",)),
}

def _bind(lib, name: str):
    argtypes, alternatives = _SIGNATURES[name]
    # The versioned symbols (cuMemAlloc_v2, ...) are what cuda.h's macros call
    # (64-bit sizes); the unversioned ones are kept only for old binaries.
    for symbol in (*alternatives, name):
        try:
            fn = getattr(lib, symbol)
        except AttributeError:
            continue
        fn.restype = ctypes.c_int
        fn.argtypes = argtypes
        return fn
    return None


class Context:
    """A retained primary context (see Driver.primary_context)."""

    def __init__(self, driver: "Driver", device: int, handle: int):
        self.driver = driver
        self.device = device
        self.handle = handle
        self._released = False

    def make_current(self) -> None:
        self.driver.call("cuCtxSetCurrent", ctypes.c_void_p(self.handle))

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.driver.call("cuDevicePrimaryCtxRelease", self.device)


class Driver:
    """The bound driver functions plus thin Python methods over them.

    Every method raises CUDAError on a failing call. Use :func:`load`, which
    also runs cuInit, rather than constructing this directly."""

    def __init__(self, lib: ctypes.CDLL, path: str = LIBCUDA):
        self.lib = lib
        self.path = path
        self._fns = {}
        missing = []
        for name in _SIGNATURES:
            fn = _bind(lib, name)
            if fn is None:
                missing.append(name)
            self._fns[name] = fn
        # Functions without which nothing works.
        essential = {"cuInit", "cuGetErrorName", "cuDeviceGetCount", "cuDeviceGet",
                     "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", "cuMemAlloc",
                     "cuMemFree", "cuMemcpyHtoD", "cuMemcpyDtoH", "cuStreamCreate",
                     "cuStreamSynchronize", "cuStreamDestroy", "cuCtxSynchronize"}
        lacking = sorted(essential & set(missing))
        if lacking:
            raise CUDAUnavailable(f"{path} lacks {', '.join(lacking)}")
        self.missing = missing

    # --- errors ---------------------------------------------------------------

    def error_name(self, code: int) -> str:
        s = ctypes.c_char_p()
        fn = self._fns.get("cuGetErrorName")
        if fn is not None and fn(int(code), ctypes.byref(s)) == CUDA_SUCCESS and s.value:
            return s.value.decode(errors="replace")
        return f"CUresult {int(code)}"

    def error_string(self, code: int) -> str:
        s = ctypes.c_char_p()
        fn = self._fns.get("cuGetErrorString")
        if fn is not None and fn(int(code), ctypes.byref(s)) == CUDA_SUCCESS and s.value:
            return s.value.decode(errors="replace")
        return ""

    def call(self, name: str, *args) -> int:
        """Call a driver function; raise CUDAError unless it returns CUDA_SUCCESS."""
        fn = self._fns.get(name)
        if fn is None:
            raise CUDAError(name, -1, "missing", f"{self.path} has no {name}")
        code = fn(*args)
        if code != CUDA_SUCCESS:
            raise CUDAError(name, code, self.error_name(code), self.error_string(code))
        return code

    # --- driver and devices ---------------------------------------------------

    def init(self) -> None:
        self.call("cuInit", 0)

    def version(self) -> Optional[int]:
        """Driver CUDA version as 1000*major + 10*minor (e.g. 12040)."""
        v = ctypes.c_int()
        try:
            self.call("cuDriverGetVersion", ctypes.byref(v))
        except CUDAError:
            return None
        return v.value

    def device_count(self) -> int:
        n = ctypes.c_int()
        self.call("cuDeviceGetCount", ctypes.byref(n))
        return n.value

    def device(self, ordinal: int = 0) -> int:
        d = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.byref(d), int(ordinal))
        return d.value

    def device_name(self, device: int) -> str:
        buf = ctypes.create_string_buffer(256)
        self.call("cuDeviceGetName", buf, len(buf), int(device))
        return buf.value.decode(errors="replace")

    def attribute(self, device: int, attribute: int) -> int:
        v = ctypes.c_int()
        self.call("cuDeviceGetAttribute", ctypes.byref(v), int(attribute), int(device))
        return v.value

    def compute_capability(self, device: int) -> Tuple[int, int]:
        return (self.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                self.attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR))

    def chip(self, device: int) -> str:
        """The ptxas architecture name of a device, e.g. sm_90."""
        major, minor = self.compute_capability(device)
        return f"sm_{major}{minor}"

    def total_memory(self, device: int) -> Optional[int]:
        n = ctypes.c_size_t()
        try:
            self.call("cuDeviceTotalMem", ctypes.byref(n), int(device))
        except CUDAError:
            return None
        return n.value

    def describe(self, ordinal: int = 0) -> dict:
        dev = self.device(ordinal)
        info = {"ordinal": ordinal, "name": self.device_name(dev), "chip": self.chip(dev),
                "driver_version": self.version(), "devices": self.device_count()}
        try:
            info["multiprocessors"] = self.attribute(
                dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            info["max_shared_memory_per_block_optin"] = self.attribute(
                dev, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        except CUDAError:
            pass
        total = self.total_memory(dev)
        if total:
            info["memory_gib"] = round(total / 2**30, 1)
        return info

    # --- contexts ---------------------------------------------------------------

    def primary_context(self, ordinal: int = 0, make_current: bool = True) -> Context:
        """Retain device `ordinal`'s primary context (the one the CUDA runtime,
        PyTorch and the sqa-aot libraries use) and make it current on the
        calling thread."""
        dev = self.device(ordinal)
        h = ctypes.c_void_p()
        self.call("cuDevicePrimaryCtxRetain", ctypes.byref(h), dev)
        ctx = Context(self, dev, h.value)
        if make_current:
            ctx.make_current()
        return ctx

    def current_context(self) -> Optional[int]:
        h = ctypes.c_void_p()
        self.call("cuCtxGetCurrent", ctypes.byref(h))
        return h.value

    def ctx_synchronize(self) -> None:
        self.call("cuCtxSynchronize")

    # --- memory -----------------------------------------------------------------

    def mem_alloc(self, nbytes: int) -> int:
        p = ctypes.c_uint64()
        self.call("cuMemAlloc", ctypes.byref(p), max(1, int(nbytes)))
        return p.value

    def mem_free(self, ptr: int) -> None:
        self.call("cuMemFree", ctypes.c_uint64(ptr))

    def mem_info(self) -> Tuple[int, int]:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.call("cuMemGetInfo", ctypes.byref(free), ctypes.byref(total))
        return free.value, total.value

    def memcpy_htod(self, dst: int, src_address: int, nbytes: int) -> None:
        """Synchronous host -> device copy (legacy default stream)."""
        if nbytes:
            self.call("cuMemcpyHtoD", ctypes.c_uint64(dst), ctypes.c_void_p(src_address),
                      int(nbytes))

    def memcpy_dtoh(self, dst_address: int, src: int, nbytes: int) -> None:
        """Synchronous device -> host copy (legacy default stream)."""
        if nbytes:
            self.call("cuMemcpyDtoH", ctypes.c_void_p(dst_address), ctypes.c_uint64(src),
                      int(nbytes))

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int,
                          stream: Optional[int] = None) -> None:
        """Device -> device copy enqueued on `stream` (a bandwidth reference)."""
        if nbytes:
            self.call("cuMemcpyDtoDAsync", ctypes.c_uint64(dst), ctypes.c_uint64(src),
                      int(nbytes), stream)

    def memset_d8(self, ptr: int, value: int, nbytes: int) -> None:
        if nbytes:
            self.call("cuMemsetD8", ctypes.c_uint64(ptr), ctypes.c_ubyte(value & 0xFF),
                      int(nbytes))

    # --- streams and events -------------------------------------------------------

    def stream_create(self, flags: int = CU_STREAM_DEFAULT) -> int:
        s = ctypes.c_void_p()
        self.call("cuStreamCreate", ctypes.byref(s), int(flags))
        return s.value

    def stream_synchronize(self, stream: Optional[int]) -> None:
        self.call("cuStreamSynchronize", ctypes.c_void_p(stream or None))

    def stream_destroy(self, stream: int) -> None:
        self.call("cuStreamDestroy", ctypes.c_void_p(stream))

    def event_create(self, flags: int = CU_EVENT_DEFAULT) -> int:
        e = ctypes.c_void_p()
        self.call("cuEventCreate", ctypes.byref(e), int(flags))
        return e.value

    def event_record(self, event: int, stream: Optional[int] = None) -> None:
        self.call("cuEventRecord", ctypes.c_void_p(event), ctypes.c_void_p(stream or None))

    def event_synchronize(self, event: int) -> None:
        self.call("cuEventSynchronize", ctypes.c_void_p(event))

    def event_elapsed_ms(self, start: int, end: int) -> float:
        ms = ctypes.c_float()
        self.call("cuEventElapsedTime", ctypes.byref(ms), ctypes.c_void_p(start),
                  ctypes.c_void_p(end))
        return ms.value

    def event_destroy(self, event: int) -> None:
        self.call("cuEventDestroy", ctypes.c_void_p(event))


_lock = threading.Lock()
_driver: Optional[Driver] = None
_failure: Optional[str] = None


def load() -> Driver:
    """The process's driver: libcuda.so.1 loaded and cuInit(0) called once.

    Raises CUDAUnavailable (with the reason) when libcuda.so.1 cannot be
    loaded or cuInit fails (e.g. CUDA_ERROR_NO_DEVICE); the failure is
    remembered, so later calls raise the same without retrying."""
    global _driver, _failure
    with _lock:
        if _driver is not None:
            return _driver
        if _failure is not None:
            raise CUDAUnavailable(_failure)
        try:
            lib = ctypes.CDLL(LIBCUDA)
        except OSError as e:
            _failure = f"{LIBCUDA} not loadable ({e})"
            raise CUDAUnavailable(_failure)
        try:
            drv = Driver(lib)
            drv.init()
        except CUDAUnavailable as e:
            _failure = str(e)
            raise
        except CUDAError as e:
            _failure = f"cuInit failed: {e.name}"
            raise CUDAUnavailable(_failure)
        _driver = drv
        return drv


def gpu_available(ordinal: int = 0) -> Tuple[bool, str]:
    """(True, "<name> (sm_XY), driver X.Y") when device `ordinal` is usable
    (libcuda loads, cuInit succeeds, the device exists and its primary
    context can be retained), else (False, reason). Never raises."""
    try:
        drv = load()
        n = drv.device_count()
        if n <= ordinal:
            return False, (f"no CUDA device {ordinal} ({n} device(s))" if n
                           else "no CUDA device")
        info = drv.describe(ordinal)
        ctx = drv.primary_context(ordinal, make_current=False)
        ctx.release()
    except CUDAUnavailable as e:
        return False, str(e)
    except CUDAError as e:
        return False, str(e)
    except Exception as e:  # noqa: BLE001 - a probe must not raise
        return False, f"{type(e).__name__}: {e}"
    v = info.get("driver_version")
    driver = f", driver CUDA {v // 1000}.{(v % 1000) // 10}" if v else ""
    return True, f"{info['name']} ({info['chip']}){driver}"


def device_info(ordinal: int = 0) -> dict:
    """{"available": bool, "reason": str, and with a GPU name, chip, ...}."""
    ok, reason = gpu_available(ordinal)
    info = {"available": ok, "reason": reason}
    if ok:
        info.update(load().describe(ordinal))
    return info


# ---------------------------------------------------------------------------
# Device arrays
# ---------------------------------------------------------------------------

class DeviceArray:
    """One cuMemAlloc'd buffer with an optional numpy shape and dtype.

    ``ptr`` is the CUdeviceptr (an int) to pass to a library. Free it with
    free() or use it as a context manager; the context it was allocated in
    must still be alive then."""

    def __init__(self, driver: Driver, nbytes: int, shape=None, dtype=None):
        self.driver = driver
        self.nbytes = int(nbytes)
        self.shape = tuple(shape) if shape is not None else None
        self.dtype = dtype
        self.ptr = driver.mem_alloc(self.nbytes)

    @classmethod
    def empty(cls, driver: Driver, shape, dtype) -> "DeviceArray":
        import numpy as np
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return cls(driver, n, shape, dtype)

    @classmethod
    def from_numpy(cls, driver: Driver, array) -> "DeviceArray":
        import numpy as np
        a = np.ascontiguousarray(array)
        d = cls(driver, a.nbytes, a.shape, a.dtype)
        try:
            d.copy_from(a)
        except BaseException:
            d.free()
            raise
        return d

    def copy_from(self, array, offset: int = 0) -> None:
        """Copy a host array into the buffer at byte `offset` (synchronous)."""
        import numpy as np
        a = np.ascontiguousarray(array)
        if offset < 0 or offset + a.nbytes > self.nbytes:
            raise ValueError(f"{a.nbytes} bytes at offset {offset} do not fit in "
                             f"{self.nbytes}")
        self.driver.memcpy_htod(self.ptr + offset, a.ctypes.data, a.nbytes)

    def copy_to(self, array, offset: int = 0) -> None:
        """Copy into a C-contiguous host array from byte `offset` (synchronous)."""
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ValueError("destination must be a writeable C-contiguous array")
        if offset < 0 or offset + array.nbytes > self.nbytes:
            raise ValueError(f"{array.nbytes} bytes at offset {offset} do not fit in "
                             f"{self.nbytes}")
        self.driver.memcpy_dtoh(array.ctypes.data, self.ptr + offset, array.nbytes)

    def to_numpy(self, shape=None, dtype=None, offset: int = 0):
        """A new host array (default: the whole buffer in its shape/dtype, or
        raw bytes as uint8 when it has none)."""
        import numpy as np
        dtype = np.dtype(dtype if dtype is not None else (self.dtype or np.uint8))
        if shape is None:
            shape = self.shape if (self.shape is not None and dtype == self.dtype) \
                else ((self.nbytes - offset) // dtype.itemsize,)
        out = np.empty(shape, dtype=dtype)
        self.copy_to(out, offset)
        return out

    def fill_bytes(self, value: int, offset: int = 0, nbytes: Optional[int] = None) -> None:
        n = self.nbytes - offset if nbytes is None else nbytes
        self.driver.memset_d8(self.ptr + offset, value, n)

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self.driver.mem_free(ptr)

    def __enter__(self) -> "DeviceArray":
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    def __repr__(self) -> str:
        return (f"DeviceArray(ptr=0x{self.ptr:x}, nbytes={self.nbytes}, "
                f"shape={self.shape}, dtype={self.dtype})")


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="Is a CUDA GPU usable? Exit 0 if so, 1 if not.")
    p.add_argument("--device", type=int, default=0, help="device ordinal (default 0)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    args = p.parse_args(argv)
    info = device_info(args.device)
    if args.json:
        print(json.dumps(info))
    elif info["available"]:
        print(f"GPU: {info['reason']}")
    else:
        print(f"no GPU: {info['reason']}")
    return 0 if info["available"] else 1


if __name__ == "__main__":
    sys.exit(main())

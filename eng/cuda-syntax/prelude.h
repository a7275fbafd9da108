// Stand-ins for the CUDA headers, for eng/cuda-syntax/check.sh (clang, device-only, no CUDA toolkit).
#include "__clang_cuda_builtin_vars.h"
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __host__ __attribute__((host))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __shared__ __attribute__((shared))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };
__device__ inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { uint4 r = {a, b, c, d}; return r; }
__device__ inline int4 make_int4(int a, int b, int c, int d) { int4 r = {a, b, c, d}; return r; }
__device__ inline float4 make_float4(float a, float b, float c, float d) { float4 r = {a, b, c, d}; return r; }
__device__ inline float2 make_float2(float a, float b) { float2 r = {a, b}; return r; }
__device__ inline float __uint_as_float(unsigned u) { return __builtin_bit_cast(float, u); }
__device__ inline float __int_as_float(int u) { return __builtin_bit_cast(float, u); }
__device__ inline unsigned __float_as_uint(float u) { return __builtin_bit_cast(unsigned, u); }
__device__ inline float __shfl_xor_sync(unsigned m, float v, int o) { return __nvvm_shfl_sync_bfly_f32(m, v, o, 0x1f); }
__device__ inline float exp2f(float x) { return __nvvm_ex2_approx_f(x); }
__device__ inline float expf(float x) { return __nvvm_ex2_approx_f(x * 1.44f); }
__device__ inline float rsqrtf(float x) { return __nvvm_rsqrt_approx_f(x); }
__device__ inline void sincosf(float x, float* s, float* c) { *s = __nvvm_sin_approx_f(x); *c = __nvvm_cos_approx_f(x); }
__device__ inline float fmaxf(float a, float b) { return __builtin_fmaxf(a, b); }
__device__ inline float fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
__device__ inline int min(int a, int b) { return a < b ? a : b; }

//===- GPUKernelABI.h - Calling convention of generated GPU kernels -------===//
//
// C++ view of GPUKernelABI.def: kernel parameter positions and the launch
// geometry. The lowering builds kernels from it; sqa-aot's launcher reads the
// kernel's #sqa.gpu_launch attribute and the same lists.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_TRANSFORMS_GPUKERNELABI_H
#define SQA_TRANSFORMS_GPUKERNELABI_H

#include <cstdint>

namespace mlir::sqa::gpu_abi {

/// The flat element buffers, in parameter order.
enum Buffer : int {
#define SQA_GPU_BUFFER(Name, cName) k##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumBuffers
};

/// Scalar parameters after the buffers, in order.
enum Scalar : int {
#define SQA_GPU_SCALAR(Name, cName) k##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumScalars
};

/// Words of one buffer's memref descriptor in the parameter block.
constexpr int kMemRefWords = 0
#define SQA_GPU_MEMREF_WORD(name, cType) +1
#include "sqa/Transforms/GPUKernelABI.def"
    ;

/// Words of the whole parameter block (one pointer per word at launch).
constexpr int kParameterWords = kNumBuffers * kMemRefWords + kNumScalars;

/// Index of the first of a buffer's three (batch, head, position) strides.
constexpr int firstStride(Buffer buffer) {
  return kQueryStrideBatch + 3 * static_cast<int>(buffer);
}

/// The decode kernels' buffers and scalars (one list for all three).
enum DecodeBuffer : int {
#define SQA_GPU_DECODE_BUFFER(Name, cName) kDecode##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumDecodeBuffers
};
enum DecodeScalar : int {
#define SQA_GPU_DECODE_SCALAR(Name, cName) kDecode##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumDecodeScalars
};
/// Index of the first of a decode element buffer's three strides.
constexpr int decodeFirstStride(DecodeBuffer buffer) {
  return kDecodeQueryStrideBatch + 3 * static_cast<int>(buffer);
}
/// Element buffers with strides: q, the caches, the new tokens, out.
constexpr int kNumDecodeStridedBuffers = kDecodeCacheLens;

/// The training kernels' buffers and scalars (one list for the
/// forward-with-lse and both backward kernels).
enum TrainingBuffer : int {
#define SQA_GPU_TRAINING_BUFFER(Name, cName) kTraining##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumTrainingBuffers
};
enum TrainingScalar : int {
#define SQA_GPU_TRAINING_SCALAR(Name, cName) kTraining##Name,
#include "sqa/Transforms/GPUKernelABI.def"
  kNumTrainingScalars
};
/// Index of the first of a training buffer's three strides.
constexpr int trainingFirstStride(TrainingBuffer buffer) {
  return kTrainingQueryStrideBatch + 3 * static_cast<int>(buffer);
}
/// Name of the training kernels' stage attribute: "lse" (the forward with
/// logsumexp), "dkdv" or "dq".
constexpr const char *kTrainingStageAttrName = "sqa.gpu_training_stage";

/// Name of the decode kernels' stage attribute ("append", "split" or
/// "merge") and of the split kernel's keys per split.
constexpr const char *kDecodeStageAttrName = "sqa.gpu_decode_stage";
constexpr const char *kDecodeSplitKeysAttrName = "sqa.gpu_decode_split_keys";

/// Name of the kernel attribute holding its #sqa.gpu_launch geometry.
constexpr const char *kLaunchAttrName = "sqa.gpu_launch";

} // namespace mlir::sqa::gpu_abi

#endif // SQA_TRANSFORMS_GPUKERNELABI_H

//===- AttentionConfig.cpp - Configurations, kernel modules, C sources ----===//

#include "DriverSupport.h"
#include "sqa/AOT/AttentionLibrary.h"

#include "SQA/IR/SQADialect.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstdlib>

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

StringRef aot::stringifyElementKind(ElementKind kind) {
  switch (kind) {
  case ElementKind::F32:
    return "f32";
  case ElementKind::F16:
    return "f16";
  case ElementKind::BF16:
    return "bf16";
  }
  llvm_unreachable("unknown element kind");
}

std::optional<ElementKind> aot::parseElementKind(StringRef text) {
  return llvm::StringSwitch<std::optional<ElementKind>>(text)
      .Case("f32", ElementKind::F32)
      .Case("f16", ElementKind::F16)
      .Case("bf16", ElementKind::BF16)
      .Default(std::nullopt);
}

float AttentionConfig::effectiveScale() const {
  return scale ? *scale : 1.0f / std::sqrt(static_cast<float>(headDim));
}

static bool isCIdentifier(StringRef name) {
  if (name.empty() || llvm::isDigit(name.front()))
    return false;
  return llvm::all_of(name,
                      [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

ArrayRef<StringRef> aot::supportedChips() {
  static const StringRef chips[] = {"sm_80", "sm_86", "sm_87",
                                    "sm_89", "sm_90", "sm_90a"};
  return chips;
}

/// Elements of a layer's largest static operand (a weight matrix), or
/// nullopt if its byte size overflows int64.
static std::optional<int64_t>
largestLayerOperandBytes(const AttentionConfig &config) {
  std::optional<int64_t> modelDim =
      llvm::checkedMul(config.heads.total, config.headDim);
  std::optional<int64_t> width = llvm::checkedMul(
      std::max(config.heads.query, config.heads.kv), config.headDim);
  if (!modelDim || !width)
    return std::nullopt;
  std::optional<int64_t> elements = llvm::checkedMul(*modelDim, *width);
  return elements ? llvm::checkedMul(*elements, int64_t(4)) : std::nullopt;
}

std::string AttentionConfig::validate() const {
  std::string message;
  llvm::raw_string_ostream os(message);
  std::string invalidHeads = verifyHeadCounts(heads);
  if (!invalidHeads.empty())
    os << invalidHeads;
  else if (heads.total > kMaxHeads)
    os << "at most " << kMaxHeads << " heads are supported, got "
       << heads.total;
  else if (headDim <= 0)
    os << "head dim must be positive, got " << headDim;
  else if (valueHeadDim <= 0)
    os << "value head dim must be positive, got " << valueHeadDim;
  else if (headDim > kMaxHeadDim || valueHeadDim > kMaxHeadDim)
    os << "head dims of at most " << kMaxHeadDim << " are supported, got "
       << headDim << " and " << valueHeadDim;
  else if (windowLeft < -1 || windowRight < -1)
    os << "window bounds must be -1 (unbounded) or >= 0, got " << windowLeft
       << "," << windowRight;
  else if (scale && !std::isfinite(*scale))
    os << "scale must be finite, got " << *scale;
  else if (!isCIdentifier(name))
    os << "name '" << name << "' is not a C identifier";
  else if (target == Target::CUDA && layer)
    os << "--layer is not available for --target cuda yet (attention only)";
  else if (target == Target::CUDA && elementKind != ElementKind::F32 &&
           (headDim % 16 != 0 || valueHeadDim % 16 != 0))
    os << "CUDA tensor-core kernels need head dims that are multiples of 16, "
          "got "
       << headDim << " and " << valueHeadDim << " (f32 has no such limit)";
  else if (target == Target::CUDA &&
           !llvm::is_contained(supportedChips(), StringRef(chip)))
    os << "unsupported --chip '" << chip << "'; expected one of "
       << llvm::join(supportedChips(), ", ");
  else if (layer && valueHeadDim != headDim)
    os << "a layer has one head dim; value head dim (" << valueHeadDim
       << ") must equal head dim (" << headDim << ")";
  else if (layer && layout != Layout::BHSD)
    os << "--layout applies to attention libraries; a layer takes x as "
          "[B, S, d_model]";
  else if (layer && !largestLayerOperandBytes(*this))
    os << "the layer's weights (d_model " << heads.total << " x " << headDim
       << " by up to " << std::max(heads.query, heads.kv) << " x " << headDim
       << ") overflow int64 bytes";
  else if (layer && layer->rope && headDim % 2 != 0)
    os << "RoPE needs an even head dim, got " << headDim;
  else if (layer && layer->rope &&
           (!(layer->ropeBase > 0) || !std::isfinite(layer->ropeBase) ||
            !(layer->ropeFactor >= 1) || !std::isfinite(layer->ropeFactor) ||
            layer->ropeOriginalMaxPositions <= 0 ||
            layer->ropePositionOffset < 0))
    os << "invalid RoPE parameters: base must be > 0, factor >= 1, "
          "original max positions > 0, offset >= 0";
  else if (layer && layer->ropeQueriesOnly && !layer->crossAttention)
    os << "--rope-queries-only is for cross-attention (--cross-attention)";
  return message;
}

std::string AttentionConfig::describe() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  if (!variant.empty())
    os << "variant=" << variant << " ";
  os << "heads=" << heads.total << " q_heads=" << heads.query
     << " kv_heads=" << heads.kv << " out_heads=" << outputHeads()
     << " head_dim=" << headDim << " value_head_dim=" << valueHeadDim
     << " dtype=" << stringifyElementKind(elementKind)
     << " layout=" << (layout == Layout::BHSD ? "bhsd" : "bshd") << " causal="
     << (causal ? stringifyMaskAlignment(alignment) : StringRef("none"))
     << " window=" << windowLeft << "," << windowRight;
  // The alignment places windows too: record it whenever a mask applies.
  if (causal || windowLeft >= 0 || windowRight >= 0)
    os << " alignment=" << stringifyMaskAlignment(alignment);
  os << " scale=" << llvm::formatv("{0:e}", effectiveScale());
  if (target == Target::CUDA)
    os << " target=cuda chip=" << chip;
  if (layer) {
    os << " layer=" << (layer->crossAttention ? "cross" : "self")
       << " d_model=" << modelDim() << " rope="
       << (layer->rope ? stringifyRopeKind(*layer->rope) : StringRef("none"));
    if (layer->rope)
      os << " rope_base=" << llvm::formatv("{0:e}", layer->ropeBase)
         << " rope_factor=" << llvm::formatv("{0:e}", layer->ropeFactor)
         << " rope_original_max=" << layer->ropeOriginalMaxPositions
         << " rope_offset=" << layer->ropePositionOffset
         << " rope_queries_only=" << (layer->ropeQueriesOnly ? 1 : 0);
    os << " bias=" << (layer->biasQ ? "q" : "") << (layer->biasK ? "k" : "")
       << (layer->biasV ? "v" : "") << (layer->biasO ? "o" : "");
  }
  return text;
}

/// The operands of a layer kernel, in ABI order: name, memref type, whether
/// present.
struct LayerOperand {
  std::string name, type;
  bool present;
  bool isOutput = false;
};

static SmallVector<LayerOperand> layerOperands(const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  std::string e = stringifyElementKind(config.elementKind).str();
  int64_t d = config.modelDim(), dh = config.headDim;
  int64_t nq = config.heads.query * dh, nkv = config.heads.kv * dh,
          nout = config.outputHeads() * dh;
  auto mat = [&](int64_t r, int64_t c) {
    return llvm::formatv("memref<{0}x{1}x{2}>", r, c, e).str();
  };
  auto vec = [&](int64_t n) {
    return llvm::formatv("memref<{0}x{1}>", n, e).str();
  };
  std::string act = llvm::formatv("memref<?x?x{0}x{1}>", d, e).str();
  return {{"x", act, true},
          {"memory", act, layer.crossAttention},
          {"w_q", mat(d, nq), true},
          {"w_k", mat(d, nkv), true},
          {"w_v", mat(d, nkv), true},
          {"w_o", mat(nout, d), true},
          {"b_q", vec(nq), layer.biasQ},
          {"b_k", vec(nkv), layer.biasK},
          {"b_v", vec(nkv), layer.biasV},
          {"b_o", vec(d), layer.biasO},
          {"out", act, true, /*isOutput=*/true}};
}

static StringRef cElementType(ElementKind kind) {
  // f16 and bf16 travel as their 16-bit patterns: C has no portable type.
  return kind == ElementKind::F32 ? "float" : "uint16_t";
}

/// The C prototype of a layer library's entry point, with its contract.
static std::string layerPrototype(const AttentionConfig &config) {
  std::string upper = StringRef(config.name).upper();
  std::string t = "const " + config.name + "_element_t *";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "#define " << upper << "_D_MODEL " << config.modelDim() << "\n\n"
     << "/* The whole attention layer, row-major, \"x @ W\" convention:\n"
     << " *   x, out  [batch][seq_len][D_MODEL]\n"
     << " *   memory  [batch][mem_len][D_MODEL] (cross-attention only, else "
        "NULL)\n"
     << " *   w_q [D_MODEL][Q_HEADS*HEAD_DIM], w_k and w_v "
        "[D_MODEL][KV_HEADS*HEAD_DIM],\n"
     << " *   w_o [OUT_HEADS*HEAD_DIM][D_MODEL]; biases b_q, b_k, b_v, b_o "
        "sized like\n"
     << " *   the weights' columns. Biases not compiled in are ignored (pass "
        "NULL);\n"
     << " *   compiled-in ones must not be NULL. q = x w_q + b_q, heads split "
        "head-major,\n"
     << " *   RoPE (rotate-half) on q and k, attention, heads concatenated, "
        "out = o w_o + b_o.\n"
     << " * Returns an sqa_status. */\n"
     << "int " << config.name << "_layer_forward(" << t << "x, " << t
     << "memory,\n    " << t << "w_q, " << t << "w_k, " << t << "w_v, " << t
     << "w_o,\n    " << t << "b_q, " << t << "b_k, " << t << "b_v, " << t
     << "b_o,\n    " << config.name
     << "_element_t *out, int64_t batch, int64_t seq_len, int64_t mem_len);"
        "\n\n";
  return text;
}

std::string aot::generateHeader(const AttentionConfig &config) {
  std::string upper = StringRef(config.name).upper();
  StringRef element = cElementType(config.elementKind);
  bool bshd = config.layout == Layout::BSHD;
  auto shape = [&](StringRef heads, StringRef len, StringRef dim) {
    return bshd
               ? llvm::formatv("[batch][{0}][{1}][{2}]", len, heads, dim).str()
               : llvm::formatv("[batch][{0}][{1}][{2}]", heads, len, dim).str();
  };
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "/* " << config.name << ".h - generated by sqa-aot; do not edit.\n"
     << " *\n * " << config.describe() << "\n *\n"
     << " * Attention softmax(q . k^T * scale + mask) . v per head, computed "
        "in\n"
     << " * f32 and rounded once to the element type.\n"
     << " * Head mapping: with Q_HEADS >= KV_HEADS, query head h uses "
        "key/value\n"
     << " * head h / (Q_HEADS / KV_HEADS); with KV_HEADS > Q_HEADS (reverse\n"
     << " * SQA) output head h uses key/value head h and query head\n"
     << " * h / (KV_HEADS / Q_HEADS). OUT_HEADS = max(Q_HEADS, KV_HEADS).\n"
     << " *\n * Layout " << (bshd ? "BSHD" : "BHSD")
     << ", C-contiguous, element type " << element
     << (config.elementKind == ElementKind::F32
             ? ""
             : (config.elementKind == ElementKind::F16
                    ? " (IEEE half bit patterns)"
                    : " (bfloat16 bit patterns)"))
     << ":\n"
     << " *   q   " << shape("Q_HEADS", "q_len", "HEAD_DIM") << "\n"
     << " *   k   " << shape("KV_HEADS", "kv_len", "HEAD_DIM") << "\n"
     << " *   v   " << shape("KV_HEADS", "kv_len", "VALUE_HEAD_DIM") << "\n"
     << " *   out " << shape("OUT_HEADS", "q_len", "VALUE_HEAD_DIM") << "\n"
     << (config.target == Target::CUDA
             ? " *\n * CUDA library for " + config.chip +
                   ": q, k, v and out are device pointers; a\n"
                   " * call checks its arguments, then enqueues one kernel on "
                   "the given\n"
                   " * stream and returns without waiting. The CUDA driver "
                   "(libcuda.so.1)\n"
                   " * is loaded at the first call, the kernel once per CUDA "
                   "context, under\n"
                   " * a lock: calls are thread-safe. Without a driver or a "
                   "GPU, calls\n"
                   " * return SQA_ERROR_NO_CUDA_DRIVER or "
                   "SQA_ERROR_NO_CUDA_DEVICE.\n */\n"
             : std::string(" *\n * Thread-safe and reentrant: the library "
                           "has no mutable global\n"
                           " * state; each call allocates its own scratch "
                           "memory.\n */\n"))
     << "#ifndef " << upper << "_H\n#define " << upper << "_H\n\n"
     << "#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
     << "#ifndef SQA_STATUS_CODES\n#define SQA_STATUS_CODES\n"
     << "/* Return codes shared by every sqa-aot library. */\n"
     << "enum sqa_status {\n"
     << "  SQA_OK = 0,\n"
     << "  SQA_ERROR_NULL_POINTER = 1,  /* q, k, v or out is NULL */\n"
     << "  SQA_ERROR_INVALID_SIZE = 2,  /* batch, q_len or kv_len <= 0 */\n"
     << "  SQA_ERROR_SIZE_OVERFLOW = 3, /* a buffer's size overflows int64 */\n"
     << "  SQA_ERROR_MISALIGNED = 4,    /* a pointer is not element-aligned "
        "(CUDA f16/bf16: 16-byte) */\n"
     << "  SQA_ERROR_ALIASING = 5,      /* out overlaps q, k or v */\n"
     << "  SQA_ERROR_NO_CUDA_DRIVER = 6, /* libcuda.so.1 cannot be loaded */\n"
     << "  SQA_ERROR_NO_CUDA_DEVICE = 7, /* cuInit failed or no GPU */\n"
     << "  SQA_ERROR_UNSUPPORTED_DEVICE = 8, /* the GPU cannot run the "
        "kernel */\n"
     << "  SQA_ERROR_CUDA = 9           /* another CUDA driver call failed "
        "*/\n"
     << "};\n#endif\n\n";
  os << "#define " << upper << "_TOTAL_HEADS " << config.heads.total << "\n"
     << "#define " << upper << "_Q_HEADS " << config.heads.query << "\n"
     << "#define " << upper << "_KV_HEADS " << config.heads.kv << "\n"
     << "#define " << upper << "_OUT_HEADS " << config.outputHeads() << "\n"
     << "#define " << upper << "_HEAD_DIM " << config.headDim << "\n"
     << "#define " << upper << "_VALUE_HEAD_DIM " << config.valueHeadDim
     << "\n\n";
  os << "typedef " << element << " " << config.name << "_element_t;\n\n";
  if (config.layer)
    os << layerPrototype(config);
  else if (config.target == Target::CUDA)
    os << "/* Enqueues out = attention(q, k, v) on `stream` (a CUstream; "
          "NULL is the\n"
       << " * legacy default stream) in the calling thread's current CUDA "
          "context\n"
       << " * (device 0's primary context if there is none). Pointers are "
          "device\n"
       << " * pointers"
       << (config.elementKind == ElementKind::F32
               ? ""
               : ", 16-byte aligned (the kernel copies 16-byte chunks)")
       << ". Returns an sqa_status. */\n"
       << "int " << config.name << "_forward(const " << config.name
       << "_element_t *q, const " << config.name << "_element_t *k,\n"
       << "    const " << config.name << "_element_t *v, " << config.name
       << "_element_t *out,\n"
       << "    int64_t batch, int64_t q_len, int64_t kv_len, void *stream);"
          "\n\n"
       << "/* Details of the last failure on the calling thread (e.g. the "
          "driver's\n"
       << " * error name), or \"\". */\n"
       << "const char *" << config.name << "_last_error(void);\n\n";
  else
    os << "/* Computes out from q, k and v; returns an sqa_status. */\n"
       << "int " << config.name << "_forward(const " << config.name
       << "_element_t *q, const " << config.name << "_element_t *k,\n"
       << "    const " << config.name << "_element_t *v, " << config.name
       << "_element_t *out,\n"
       << "    int64_t batch, int64_t q_len, int64_t kv_len);\n\n";
  os << "/* A static English message for an sqa_status. */\n"
     << "const char *" << config.name << "_error_string(int status);\n\n"
     << "/* The compiled configuration as one line of text. */\n"
     << "const char *" << config.name << "_config(void);\n\n"
     << "#ifdef __cplusplus\n}\n#endif\n\n#endif /* " << upper << "_H */\n";
  return text;
}

static std::string generateLayerEntryLayer(const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  SmallVector<LayerOperand> operands = layerOperands(config);
  StringRef name = config.name;
  int64_t d = config.modelDim(), dh = config.headDim;
  int64_t cols[] = {d,
                    d,
                    config.heads.query * dh,
                    config.heads.kv * dh,
                    config.heads.kv * dh,
                    d,
                    config.heads.query * dh,
                    config.heads.kv * dh,
                    config.heads.kv * dh,
                    d,
                    d};
  int64_t rows[] = {0, 0, d, d, d, config.outputHeads() * dh, 1, 1, 1, 1, 0};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "/* Generated by sqa-aot: argument checks and memref descriptors. */\n"
     << "#include \"" << name << ".h\"\n#include <stddef.h>\n\n"
     << "typedef struct { void *allocated, *aligned; int64_t offset, "
        "sizes[1], strides[1]; } memref1;\n"
     << "typedef struct { void *allocated, *aligned; int64_t offset, "
        "sizes[2], strides[2]; } memref2;\n"
     << "typedef struct { void *allocated, *aligned; int64_t offset, "
        "sizes[3], strides[3]; } memref3;\n\n"
     << "void _mlir_ciface_" << name << "_kernel(";
  bool first = true;
  for (const LayerOperand &operand : operands) {
    if (!operand.present)
      continue;
    int rank =
        operand.name == "x" || operand.name == "memory" || operand.name == "out"
            ? 3
            : (operand.name[0] == 'w' ? 2 : 1);
    os << (first ? "" : ", ") << "memref" << rank << " *";
    first = false;
  }
  os << ");\n\n"
     << "static int overlaps(const void *a, int64_t a_bytes, const void *b,\n"
     << "                    int64_t b_bytes) {\n"
     << "  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;\n"
     << "  return b && x < y + (uintptr_t)b_bytes && y < x + "
        "(uintptr_t)a_bytes;\n"
     << "}\n\n";
  std::string t = "const " + config.name + "_element_t *";
  os << "int " << name << "_layer_forward(" << t << "x, " << t << "memory,\n"
     << "    " << t << "w_q, " << t << "w_k, " << t << "w_v, " << t << "w_o,\n"
     << "    " << t << "b_q, " << t << "b_k, " << t << "b_v, " << t << "b_o,\n"
     << "    " << name
     << "_element_t *out, int64_t batch, int64_t seq_len, "
        "int64_t mem_len) {\n"
     << "  const int64_t elem = (int64_t)sizeof(" << name << "_element_t);\n"
     << "  int64_t act_bytes, mem_bytes = 0;\n";
  if (!layer.crossAttention)
    os << "  (void)mem_len;\n  memory = NULL;\n";
  // Unconfigured biases are ignored.
  const char *biasNames[] = {"b_q", "b_k", "b_v", "b_o"};
  for (unsigned i = 0; i < 4; ++i)
    if (!operands[6 + i].present)
      os << "  " << biasNames[i] << " = NULL;\n";
  os << "  if (!x || !w_q || !w_k || !w_v || !w_o || !out";
  if (layer.crossAttention)
    os << " || !memory";
  for (unsigned i = 0; i < 4; ++i)
    if (operands[6 + i].present)
      os << " || !" << biasNames[i];
  os << ")\n    return SQA_ERROR_NULL_POINTER;\n"
     << "  if (batch <= 0 || seq_len <= 0"
     << (layer.crossAttention ? " || mem_len <= 0" : "") << ")\n"
     << "    return SQA_ERROR_INVALID_SIZE;\n"
     << "  if (((uintptr_t)x | (uintptr_t)memory | (uintptr_t)w_q | "
        "(uintptr_t)w_k |\n"
     << "       (uintptr_t)w_v | (uintptr_t)w_o | (uintptr_t)b_q | "
        "(uintptr_t)b_k |\n"
     << "       (uintptr_t)b_v | (uintptr_t)b_o | (uintptr_t)out) % elem)\n"
     << "    return SQA_ERROR_MISALIGNED;\n"
     << "  if (__builtin_mul_overflow(batch, seq_len, &act_bytes) ||\n"
     << "      __builtin_mul_overflow(act_bytes, (int64_t)" << d * 8
     << ", &act_bytes))\n    return SQA_ERROR_SIZE_OVERFLOW;\n"
     << "  act_bytes = act_bytes / 8 * elem;\n";
  if (layer.crossAttention)
    os << "  if (__builtin_mul_overflow(batch, mem_len, &mem_bytes) ||\n"
       << "      __builtin_mul_overflow(mem_bytes, (int64_t)" << d * 8
       << ", &mem_bytes))\n    return SQA_ERROR_SIZE_OVERFLOW;\n"
       << "  mem_bytes = mem_bytes / 8 * elem;\n";
  os << "  if (overlaps(out, act_bytes, x, act_bytes) || overlaps(out, "
        "act_bytes, memory, mem_bytes)";
  for (unsigned i = 2; i < 10; ++i)
    os << " ||\n      overlaps(out, act_bytes, " << operands[i].name << ", "
       << rows[i] * cols[i] << " * elem)";
  os << ")\n    return SQA_ERROR_ALIASING;\n\n";
  // Descriptors.
  auto act = [&](StringRef var, StringRef ptr, StringRef len) {
    os << "  memref3 " << var << " = {(void *)" << ptr << ", (void *)" << ptr
       << ", 0, {batch, " << len << ", " << d << "}, {" << len << " * " << d
       << ", " << d << ", 1}};\n";
  };
  act("mx", "x", "seq_len");
  if (layer.crossAttention)
    act("mm", "memory", "mem_len");
  act("mo", "out", "seq_len");
  for (unsigned i = 2; i < 6; ++i)
    os << "  memref2 m" << operands[i].name << " = {(void *)"
       << operands[i].name << ", (void *)" << operands[i].name << ", 0, {"
       << rows[i] << ", " << cols[i] << "}, {" << cols[i] << ", 1}};\n";
  for (unsigned i = 6; i < 10; ++i)
    if (operands[i].present)
      os << "  memref1 m" << operands[i].name << " = {(void *)"
         << operands[i].name << ", (void *)" << operands[i].name << ", 0, {"
         << cols[i] << "}, {1}};\n";
  os << "  _mlir_ciface_" << name << "_kernel(&mx";
  if (layer.crossAttention)
    os << ", &mm";
  for (unsigned i = 2; i < 10; ++i)
    if (operands[i].present)
      os << ", &m" << operands[i].name;
  os << ", &mo);\n  return SQA_OK;\n}\n\n";
  return text;
}

std::string aot::generateEntryLayer(const AttentionConfig &config) {
  if (config.layer)
    return generateLayerEntryLayer(config) + generateCommonEntries(config);
  StringRef name = config.name;
  bool bshd = config.layout == Layout::BSHD;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "/* Generated by sqa-aot: argument checks and memref descriptors. */\n"
     << "#include \"" << name << ".h\"\n#include <stddef.h>\n\n"
     << "typedef struct {\n  void *allocated;\n  void *aligned;\n"
     << "  int64_t offset;\n  int64_t sizes[4];\n  int64_t strides[4];\n"
     << "} memref4;\n\n"
     << "void _mlir_ciface_" << name
     << "_kernel(memref4 *, memref4 *, memref4 *, memref4 *);\n\n"
     << "/* A contiguous [d0, d1, d2, d3] view; 0 if its byte size overflows. "
        "*/\n"
     << "static int view(memref4 *m, const void *data, int64_t d0, int64_t "
        "d1,\n"
     << "                int64_t d2, int64_t d3, int64_t *bytes) {\n"
     << "  int64_t s2, s1, s0;\n"
     << "  if (__builtin_mul_overflow(d3, d2, &s1) ||\n"
     << "      __builtin_mul_overflow(s1, d1, &s0) ||\n"
     << "      __builtin_mul_overflow(s0, d0, bytes) ||\n"
     << "      __builtin_mul_overflow(*bytes, (int64_t)sizeof(" << name
     << "_element_t), bytes))\n    return 0;\n"
     << "  s2 = d3;\n"
     << "  m->allocated = m->aligned = (void *)data;\n  m->offset = 0;\n"
     << "  m->sizes[0] = d0; m->sizes[1] = d1; m->sizes[2] = d2; m->sizes[3] = "
        "d3;\n"
     << "  m->strides[0] = s0; m->strides[1] = s1; m->strides[2] = s2;\n"
     << "  m->strides[3] = 1;\n  return 1;\n}\n\n"
     << "static int overlaps(const void *a, int64_t a_bytes, const void *b,\n"
     << "                    int64_t b_bytes) {\n"
     << "  uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;\n"
     << "  return x < y + (uintptr_t)b_bytes && y < x + "
        "(uintptr_t)a_bytes;\n}\n\n";
  auto dims = [&](int64_t heads, StringRef len, int64_t dim) {
    return bshd ? llvm::formatv("batch, {0}, {1}, {2}", len, heads, dim).str()
                : llvm::formatv("batch, {0}, {1}, {2}", heads, len, dim).str();
  };
  os << "int " << name << "_forward(const " << name << "_element_t *q, const "
     << name << "_element_t *k,\n    const " << name << "_element_t *v, "
     << name << "_element_t *out,\n"
     << "    int64_t batch, int64_t q_len, int64_t kv_len) {\n"
     << "  memref4 mq, mk, mv, mo;\n  int64_t bq, bk, bv, bo;\n"
     << "  if (!q || !k || !v || !out)\n    return SQA_ERROR_NULL_POINTER;\n"
     << "  if (batch <= 0 || q_len <= 0 || kv_len <= 0)\n"
     << "    return SQA_ERROR_INVALID_SIZE;\n"
     << "  if (((uintptr_t)q | (uintptr_t)k | (uintptr_t)v | (uintptr_t)out) "
        "%\n"
     << "      sizeof(" << name << "_element_t))\n"
     << "    return SQA_ERROR_MISALIGNED;\n"
     << "  if (!view(&mq, q, "
     << dims(config.heads.query, "q_len", config.headDim) << ", &bq) ||\n"
     << "      !view(&mk, k, "
     << dims(config.heads.kv, "kv_len", config.headDim) << ", &bk) ||\n"
     << "      !view(&mv, v, "
     << dims(config.heads.kv, "kv_len", config.valueHeadDim) << ", &bv) ||\n"
     << "      !view(&mo, out, "
     << dims(config.outputHeads(), "q_len", config.valueHeadDim)
     << ", &bo))\n    return SQA_ERROR_SIZE_OVERFLOW;\n"
     // The current kernel materializes f32 scores [B, H, S, T]; refuse sizes
     // whose scratch size cannot even be represented.
     << "  {\n    int64_t scores;\n"
     << "    if (__builtin_mul_overflow(batch * " << config.outputHeads()
     << ", q_len, &scores) ||\n"
     << "        __builtin_mul_overflow(scores, kv_len, &scores) ||\n"
     << "        __builtin_mul_overflow(scores, (int64_t)8, &scores))\n"
     << "      return SQA_ERROR_SIZE_OVERFLOW;\n  }\n"
     << "  if (overlaps(out, bo, q, bq) || overlaps(out, bo, k, bk) ||\n"
     << "      overlaps(out, bo, v, bv))\n    return SQA_ERROR_ALIASING;\n"
     << "  _mlir_ciface_" << name << "_kernel(&mq, &mk, &mv, &mo);\n"
     << "  return SQA_OK;\n}\n\n";
  return text + generateCommonEntries(config);
}

std::string aot::generateCommonEntries(const AttentionConfig &config) {
  StringRef name = config.name;
  bool cuda = config.target == Target::CUDA;
  bool half = config.elementKind != ElementKind::F32;
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "const char *" << name << "_error_string(int status) {\n"
     << "  switch (status) {\n"
     << "  case SQA_OK: return \"success\";\n"
     << "  case SQA_ERROR_NULL_POINTER: return \"q, k, v or out is a null "
        "pointer\";\n"
     << "  case SQA_ERROR_INVALID_SIZE: return \"batch, q_len and kv_len must "
        "be positive\";\n"
     << "  case SQA_ERROR_SIZE_OVERFLOW: return \"a tensor's size in bytes "
        "overflows int64"
     << (cuda ? ", or the grid is too large" : "") << "\";\n"
     << "  case SQA_ERROR_MISALIGNED: return \""
     << (cuda && half ? "a pointer is not 16-byte aligned"
                      : "a pointer is not aligned to the element size")
     << "\";\n"
     << "  case SQA_ERROR_ALIASING: return \"out overlaps q, k or v\";\n";
  if (cuda)
    os << "  case SQA_ERROR_NO_CUDA_DRIVER: return \"no CUDA driver: "
          "libcuda.so.1 cannot be loaded\";\n"
       << "  case SQA_ERROR_NO_CUDA_DEVICE: return \"no CUDA GPU: cuInit "
          "failed or no device is visible\";\n"
       << "  case SQA_ERROR_UNSUPPORTED_DEVICE: return \"the GPU cannot run "
          "this library's kernel (built for "
       << config.chip << ")\";\n"
       << "  case SQA_ERROR_CUDA: return \"a CUDA driver call failed (see "
       << name << "_last_error)\";\n";
  os << "  default: return \"unknown status code\";\n  }\n}\n\n"
     << "const char *" << name << "_config(void) {\n  return \""
     << config.describe() << "\";\n}\n";
  return text;
}

//===- CSources.cpp - C header and entry layers of CPU libraries ----------===//
//
// Fills the templates under lib/AOT/templates for a configuration: the
// header, the C entry layer (argument checks, memref descriptors) of an
// attention or layer library, and the entry points every library has.
//
//===----------------------------------------------------------------------===//

#include "DriverSupport.h"
#include "sqa/AOT/AttentionLibrary.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

static StringRef cElementType(ElementKind kind) {
  // f16 and bf16 travel as their 16-bit patterns: C has no portable type.
  return kind == ElementKind::F32 ? "float" : "uint16_t";
}

/// The placeholders every template may use.
static TemplateValues commonValues(const AttentionConfig &config) {
  return {{"name", config.name},
          {"upper", StringRef(config.name).upper()},
          {"config", config.describe()},
          {"chip", config.chip}};
}

namespace {
/// One operand of a layer kernel, in ABI order.
struct LayerOperand {
  StringRef name;
  int rank;
  /// Rows and columns of a weight or bias (rows 1); activations have none.
  int64_t rows = 0, cols = 0;
  bool present = true;
};
} // namespace

static SmallVector<LayerOperand> layerOperands(const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  int64_t d = config.modelDim(), dh = config.headDim;
  int64_t nq = config.heads.query * dh, nkv = config.heads.kv * dh,
          nout = config.outputHeads() * dh;
  return {{"x", 3},
          {"memory", 3, 0, 0, layer.crossAttention},
          {"w_q", 2, d, nq},
          {"w_k", 2, d, nkv},
          {"w_v", 2, d, nkv},
          {"w_o", 2, nout, d},
          {"b_q", 1, 1, nq, layer.biasQ},
          {"b_k", 1, 1, nkv, layer.biasK},
          {"b_v", 1, 1, nkv, layer.biasV},
          {"b_o", 1, 1, d, layer.biasO},
          {"out", 3}};
}

/// The parameter list of `NAME_layer_forward`.
static std::string layerParameters(const AttentionConfig &config) {
  std::string t = "const " + config.name + "_element_t *";
  return t + "x, " + t + "memory,\n    " + t + "w_q, " + t + "w_k, " + t +
         "w_v, " + t + "w_o,\n    " + t + "b_q, " + t + "b_k, " + t + "b_v, " +
         t + "b_o,\n    " + config.name +
         "_element_t *out, int64_t batch, int64_t seq_len, int64_t mem_len";
}

/// The parameter list of `NAME_layer_backward`: the forward's inputs, d_y,
/// then one gradient per input in the same order.
static std::string layerBackwardParameters(const AttentionConfig &config) {
  std::string t = "const " + config.name + "_element_t *";
  std::string g = config.name + "_element_t *";
  return t + "x, " + t + "memory,\n    " + t + "w_q, " + t + "w_k, " + t +
         "w_v, " + t + "w_o,\n    " + t + "b_q, " + t + "b_k, " + t + "b_v, " +
         t + "b_o,\n    " + t + "d_y, " + g + "dx, " + g + "d_memory,\n    " +
         g + "dw_q, " + g + "dw_k, " + g + "dw_v, " + g + "dw_o,\n    " + g +
         "db_q, " + g + "db_k, " + g + "db_v, " + g +
         "db_o,\n    int64_t batch, int64_t seq_len, int64_t mem_len";
}

/// Whether a layer library has NAME_layer_decode (and, for
/// cross-attention, NAME_layer_memory_kv): not for cross-attention with
/// RoPE, whose decode step has no query positions.
static bool hasLayerDecode(const AttentionConfig &config) {
  return !(config.layer->crossAttention && config.layer->rope);
}

/// The parameter lists of `NAME_layer_decode` and `NAME_layer_memory_kv`.
static std::string layerDecodeParameters(const AttentionConfig &config) {
  std::string t = "const " + config.name + "_element_t *",
              w = config.name + "_element_t *";
  return t + "x_new, " + t + "w_q, " + t + "w_k, " + t + "w_v,\n    " + t +
         "w_o, " + t + "b_q, " + t + "b_k, " + t + "b_v,\n    " + t + "b_o, " +
         w + "k_cache, " + w + "v_cache,\n    " +
         "const int64_t *cache_lens, " + w +
         "y, int64_t batch, int64_t new_len,\n    int64_t capacity";
}

static std::string layerMemoryKVParameters(const AttentionConfig &config) {
  std::string t = "const " + config.name + "_element_t *",
              w = config.name + "_element_t *";
  return t + "memory, " + t + "w_k, " + t + "w_v,\n    " + t + "b_k, " + t +
         "b_v, " + w + "k_cache, " + w +
         "v_cache,\n    int64_t batch, int64_t mem_len, int64_t capacity";
}

std::string aot::generateHeader(const AttentionConfig &config) {
  bool bshd = config.layout == Layout::BSHD;
  auto shape = [&](StringRef heads, StringRef len, StringRef dim) {
    return bshd
               ? llvm::formatv("[batch][{0}][{1}][{2}]", len, heads, dim).str()
               : llvm::formatv("[batch][{0}][{1}][{2}]", heads, len, dim).str();
  };
  TemplateValues values = commonValues(config);
  bool cuda = config.target == Target::CUDA;
  std::string prototypes;
  if (config.layer) {
    values["d_model"] = std::to_string(config.modelDim());
    values["layer_params"] = layerParameters(config);
    values["backward_params"] = layerBackwardParameters(config);
    prototypes = fillTemplate("header-forward-layer.h.in", values) +
                 fillTemplate("header-backward-layer.h.in", values);
    if (hasLayerDecode(config)) {
      TemplateValues decode = values;
      decode["decode_params"] = layerDecodeParameters(config);
      decode["kv_params"] = layerMemoryKVParameters(config);
      // One header paragraph per kind of step.
      std::string cross =
          "Cross-attention: the caches hold the memory's keys and\n"
          " * values (" +
          config.name +
          "_layer_memory_kv); nothing is appended, row b\n"
          " * attends to its cache_lens[b] keys; w_k, w_v, b_k and b_v are\n"
          " * ignored.";
      std::string self =
          "q, k, v of the new tokens as in the forward, RoPE at\n"
          " * positions cache_lens[b] + i (+ the RoPE offset); k and v are\n"
          " * written to the caches at [cache_lens[b], cache_lens[b] + "
          "new_len),\n"
          " * and row b attends to its cache_lens[b] + new_len keys.";
      decode["decode_semantics"] = config.layer->crossAttention ? cross : self;
      prototypes += fillTemplate("header-decode-layer.h.in", decode);
      if (config.layer->crossAttention)
        prototypes += fillTemplate("header-memory-kv-layer.h.in", decode);
    }
  } else if (cuda) {
    values["alignment_note"] =
        config.elementKind == ElementKind::F32
            ? ""
            : ", 16-byte aligned (the kernel copies 16-byte chunks)";
    prototypes = fillTemplate("header-forward-cuda.h.in", values);
  } else {
    prototypes = fillTemplate("header-forward-cpu.h.in", values);
  }
  if (!config.layer) {
    TemplateValues decode = values;
    decode["q_shape"] = shape("Q_HEADS", "new_len", "HEAD_DIM");
    decode["k_cache_shape"] = shape("KV_HEADS", "capacity", "HEAD_DIM");
    decode["v_cache_shape"] = shape("KV_HEADS", "capacity", "VALUE_HEAD_DIM");
    decode["k_new_shape"] = shape("KV_HEADS", "new_len", "HEAD_DIM");
    decode["v_new_shape"] = shape("KV_HEADS", "new_len", "VALUE_HEAD_DIM");
    decode["out_shape"] = shape("OUT_HEADS", "new_len", "VALUE_HEAD_DIM");
    prototypes += fillTemplate(
        cuda ? "header-decode-cuda.h.in" : "header-decode-cpu.h.in", decode);
    prototypes += fillTemplate(cuda ? "header-training-cuda.h.in"
                                    : "header-training-cpu.h.in",
                               values);
  }
  values["prototypes"] = prototypes;
  values["target_note"] = fillTemplate(
      cuda ? "header-note-cuda.h.in" : "header-note-cpu.h.in", values);
  values["layout"] = bshd ? "BSHD" : "BHSD";
  values["element_type"] = cElementType(config.elementKind).str();
  values["element_note"] = config.elementKind == ElementKind::F32
                               ? ""
                               : (config.elementKind == ElementKind::F16
                                      ? " (IEEE half bit patterns)"
                                      : " (bfloat16 bit patterns)");
  values["q_shape"] = shape("Q_HEADS", "q_len", "HEAD_DIM");
  values["k_shape"] = shape("KV_HEADS", "kv_len", "HEAD_DIM");
  values["v_shape"] = shape("KV_HEADS", "kv_len", "VALUE_HEAD_DIM");
  values["out_shape"] = shape("OUT_HEADS", "q_len", "VALUE_HEAD_DIM");
  values["total_heads"] = std::to_string(config.heads.total);
  values["q_heads"] = std::to_string(config.heads.query);
  values["kv_heads"] = std::to_string(config.heads.kv);
  values["out_heads"] = std::to_string(config.outputHeads());
  values["head_dim"] = std::to_string(config.headDim);
  values["value_head_dim"] = std::to_string(config.valueHeadDim);
  return fillTemplate("header.h.in", values);
}

static std::string generateLayerEntryLayer(const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  SmallVector<LayerOperand> operands = layerOperands(config);
  int64_t d = config.modelDim();
  TemplateValues values = commonValues(config);
  values["layer_params"] = layerParameters(config);
  values["d_model_x8"] = std::to_string(d * 8);

  std::string kernelParams, ignored, nullChecks, overlaps, descriptors,
      kernelArgs;
  llvm::raw_string_ostream descriptorOS(descriptors);
  for (const LayerOperand &operand : operands) {
    bool bias = operand.name.starts_with("b_");
    if (!operand.present) {
      // Unconfigured operands are ignored.
      ignored += operand.name == "memory"
                     ? "  (void)mem_len;\n  memory = NULL;\n"
                     : ("  " + operand.name + " = NULL;\n").str();
      continue;
    }
    kernelParams += (kernelParams.empty() ? "memref" : ", memref") +
                    std::to_string(operand.rank) + " *";
    if (operand.name != "memory" && !bias)
      nullChecks += (nullChecks.empty() ? "!" : " || !") + operand.name.str();
    kernelArgs += (kernelArgs.empty() ? "&m" : ", &m") +
                  operand.name.take_front(operand.rank == 3 ? 1 : 3).str();
    if (operand.rank == 3) {
      StringRef len = operand.name == "memory" ? "mem_len" : "seq_len";
      descriptorOS << "  memref3 m" << operand.name.front() << " = {(void *)"
                   << operand.name << ", (void *)" << operand.name
                   << ", 0, {batch, " << len << ", " << d << "}, {" << len
                   << " * " << d << ", " << d << ", 1}};\n";
    } else if (operand.rank == 2) {
      descriptorOS << "  memref2 m" << operand.name << " = {(void *)"
                   << operand.name << ", (void *)" << operand.name << ", 0, {"
                   << operand.rows << ", " << operand.cols << "}, {"
                   << operand.cols << ", 1}};\n";
    } else {
      descriptorOS << "  memref1 m" << operand.name << " = {(void *)"
                   << operand.name << ", (void *)" << operand.name << ", 0, {"
                   << operand.cols << "}, {1}};\n";
    }
  }
  // Memory and the biases after the always-present pointers, as before.
  if (layer.crossAttention)
    nullChecks += " || !memory";
  for (const LayerOperand &operand : operands)
    if (operand.rank != 3) {
      if (operand.rank == 1 && operand.present)
        nullChecks += " || !" + operand.name.str();
      overlaps += " ||\n      overlaps(out, act_bytes, " + operand.name.str() +
                  ", " + std::to_string(operand.rows * operand.cols) +
                  " * elem)";
    }
  values["kernel_params"] = kernelParams;
  values["ignored"] = ignored;
  values["null_checks"] = nullChecks;
  values["size_checks"] = std::string("batch <= 0 || seq_len <= 0") +
                          (layer.crossAttention ? " || mem_len <= 0" : "");
  values["memory_bytes"] = layer.crossAttention
                               ? fillTemplate("entry-layer-memory.c.in", values)
                               : "";
  values["overlaps"] = overlaps;
  values["descriptors"] = descriptors;
  values["kernel_args"] = kernelArgs;
  return fillTemplate("entry-layer.c.in", values);
}

/// `NAME_layer_backward`: the forward's checks over the inputs, d_y and the
/// gradients (gradient names: "d" + the input's, "dx" for x).
static std::string generateLayerBackwardEntry(const AttentionConfig &config) {
  const AttentionConfig::Layer &layer = *config.layer;
  SmallVector<LayerOperand> inputs = layerOperands(config);
  inputs.pop_back(); // out
  int64_t d = config.modelDim();
  TemplateValues values = commonValues(config);
  values["backward_params"] = layerBackwardParameters(config);
  values["d_model_x8"] = std::to_string(d * 8);

  struct Pointer {
    std::string name;
    LayerOperand operand;
  };
  SmallVector<Pointer> readPointers, gradientPointers;
  std::string ignored;
  for (const LayerOperand &operand : inputs) {
    std::string gradient =
        operand.name == "x" ? "dx" : ("d" + operand.name).str();
    if (operand.name == "memory")
      gradient = "d_memory";
    if (!operand.present) {
      ignored +=
          operand.name == "memory"
              ? "  (void)mem_len;\n  memory = NULL;\n  d_memory = NULL;\n"
              : ("  " + operand.name + " = NULL;\n  " + gradient + " = NULL;\n")
                    .str();
      continue;
    }
    readPointers.push_back({operand.name.str(), operand});
    gradientPointers.push_back({gradient, operand});
  }
  readPointers.push_back({"d_y", inputs.front()}); // shaped as x
  auto bytes = [&](const LayerOperand &operand) {
    if (operand.rank == 3)
      return std::string(operand.name == "memory" ? "mem_bytes" : "act_bytes");
    return std::to_string(operand.rows * operand.cols) + " * elem";
  };
  std::string nullChecks, alignment, overlaps, descriptors, kernelParams,
      kernelArgs;
  llvm::raw_string_ostream descriptorOS(descriptors);
  auto addPointer = [&](const Pointer &p) {
    nullChecks += (nullChecks.empty() ? "!" : " || !") + p.name;
    alignment +=
        (alignment.empty() ? "(uintptr_t)" : " | (uintptr_t)") + p.name;
    kernelParams += (kernelParams.empty() ? "memref" : ", memref") +
                    std::to_string(p.operand.rank) + " *";
    kernelArgs += (kernelArgs.empty() ? "&m_" : ", &m_") + p.name;
    const LayerOperand &o = p.operand;
    descriptorOS << "  memref" << o.rank << " m_" << p.name << " = {(void *)"
                 << p.name << ", (void *)" << p.name << ", 0, ";
    if (o.rank == 3) {
      StringRef len = o.name == "memory" ? "mem_len" : "seq_len";
      descriptorOS << "{batch, " << len << ", " << d << "}, {" << len << " * "
                   << d << ", " << d << ", 1}};\n";
    } else if (o.rank == 2) {
      descriptorOS << "{" << o.rows << ", " << o.cols << "}, {" << o.cols
                   << ", 1}};\n";
    } else {
      descriptorOS << "{" << o.cols << "}, {1}};\n";
    }
  };
  for (const Pointer &p : readPointers)
    addPointer(p);
  for (const Pointer &p : gradientPointers)
    addPointer(p);
  for (size_t i = 0; i < gradientPointers.size(); ++i) {
    const Pointer &g = gradientPointers[i];
    auto overlap = [&](const Pointer &other) {
      overlaps += (overlaps.empty() ? "" : " ||\n      ") +
                  ("overlaps(" + g.name + ", " + bytes(g.operand) + ", " +
                   other.name + ", " + bytes(other.operand) + ")");
    };
    for (const Pointer &p : readPointers)
      overlap(p);
    for (const Pointer &p : ArrayRef(gradientPointers).drop_front(i + 1))
      overlap(p);
  }
  values["ignored"] = ignored;
  values["null_checks"] = nullChecks;
  values["size_checks"] = std::string("batch <= 0 || seq_len <= 0") +
                          (layer.crossAttention ? " || mem_len <= 0" : "");
  values["alignment_checks"] = alignment;
  values["memory_bytes"] = layer.crossAttention
                               ? fillTemplate("entry-layer-memory.c.in", values)
                               : "";
  values["overlaps"] = overlaps;
  values["descriptors"] = descriptors;
  values["kernel_params"] = kernelParams;
  values["kernel_args"] = kernelArgs;
  return fillTemplate("entry-layer-backward.c.in", values);
}

namespace {
/// One argument of a layer decode kernel: its C name, its memref rank and
/// descriptor sizes/strides as C expressions.
struct KernelArgument {
  std::string name;
  int rank;
  SmallVector<std::string> sizes, strides;
  bool present = true;
};
} // namespace

/// Kernel parameters, descriptors and call arguments of `arguments`; absent
/// ones are set to NULL (ignored).
static void fillKernelArguments(ArrayRef<KernelArgument> arguments,
                                TemplateValues &values) {
  std::string params, descriptors, args, ignored;
  for (const KernelArgument &arg : arguments) {
    if (!arg.present) {
      ignored += "  " + arg.name + " = NULL;\n";
      continue;
    }
    std::string type = "memref" + std::to_string(arg.rank);
    params += (params.empty() ? "" : ", ") + type + " *";
    args += (args.empty() ? "&m_" : ", &m_") + arg.name;
    descriptors += "  " + type + " m_" + arg.name + " = {(void *)" + arg.name +
                   ", (void *)" + arg.name + ", 0, {" +
                   llvm::join(arg.sizes, ", ") + "}, {" +
                   llvm::join(arg.strides, ", ") + "}};\n";
  }
  values["kernel_params"] = params;
  values["descriptors"] = descriptors;
  values["kernel_args"] = args;
  values["ignored"] = ignored;
}

/// NAME_layer_decode, and NAME_layer_memory_kv for cross-attention.
static std::string generateLayerDecodeEntries(const AttentionConfig &config) {
  if (!hasLayerDecode(config))
    return "";
  const AttentionConfig::Layer &layer = *config.layer;
  int64_t d = config.modelDim(), dh = config.headDim, hkv = config.heads.kv;
  int64_t nq = config.heads.query * dh, nkv = hkv * dh,
          nout = config.outputHeads() * dh;
  bool append = !layer.crossAttention;
  auto str = [](int64_t v) { return std::to_string(v); };
  auto act = [&](StringRef name, StringRef len) {
    return KernelArgument{name.str(),
                          3,
                          {"batch", len.str(), str(d)},
                          {len.str() + " * " + str(d), str(d), "1"}};
  };
  auto mat = [&](StringRef name, int64_t rows, int64_t cols, bool present) {
    return KernelArgument{
        name.str(), 2, {str(rows), str(cols)}, {str(cols), "1"}, present};
  };
  auto vec = [&](StringRef name, int64_t n, bool present) {
    return KernelArgument{name.str(), 1, {str(n)}, {"1"}, present};
  };
  auto cache = [&](StringRef name) {
    return KernelArgument{name.str(),
                          4,
                          {"batch", str(hkv), "capacity", str(dh)},
                          {str(hkv) + " * capacity * " + str(dh),
                           "capacity * " + str(dh), str(dh), "1"}};
  };
  // Weights and biases the kernel reads: y must not overlap them, nor the
  // caches when they are written.
  auto readOnly = [&](ArrayRef<KernelArgument> arguments, StringRef written,
                      StringRef bytes) {
    std::string text;
    for (const KernelArgument &arg : arguments)
      if (arg.present && (StringRef(arg.name).starts_with("w_") ||
                          StringRef(arg.name).starts_with("b_"))) {
        int64_t count = 1;
        for (StringRef size : arg.sizes)
          count *= std::stoll(size.str());
        text += " ||\n      overlaps(" + written.str() + ", " + bytes.str() +
                ", " + arg.name + ", " + str(count) + " * elem)";
      }
    return text;
  };
  auto nullChecks = [&](ArrayRef<KernelArgument> arguments) {
    std::string text;
    for (const KernelArgument &arg : arguments)
      if (arg.present)
        text += (text.empty() ? "!" : " || !") + arg.name;
    return text;
  };

  SmallVector<KernelArgument> decode = {act("x_new", "new_len"),
                                        mat("w_q", d, nq, true),
                                        mat("w_k", d, nkv, append),
                                        mat("w_v", d, nkv, append),
                                        mat("w_o", nout, d, true),
                                        vec("b_q", nq, layer.biasQ),
                                        vec("b_k", nkv, append && layer.biasK),
                                        vec("b_v", nkv, append && layer.biasV),
                                        vec("b_o", d, layer.biasO),
                                        cache("k_cache"),
                                        cache("v_cache"),
                                        {"cache_lens", 1, {"batch"}, {"1"}},
                                        act("y", "new_len")};
  TemplateValues values = commonValues(config);
  fillKernelArguments(decode, values);
  values["decode_params"] = layerDecodeParameters(config);
  values["append"] = append ? "1" : "0";
  values["null_checks"] = nullChecks(decode);
  values["d_model_x8"] = str(d * 8);
  values["cache_row_x8"] = str(nkv * 8);
  values["overlaps"] = readOnly(decode, "y", "act_bytes");
  values["cache_overlaps"] = readOnly(decode, "k_cache", "cache_bytes") +
                             readOnly(decode, "v_cache", "cache_bytes");
  std::string entry = fillTemplate("entry-layer-decode.c.in", values);
  if (append)
    return entry;

  SmallVector<KernelArgument> kv = {act("memory", "mem_len"),
                                    mat("w_k", d, nkv, true),
                                    mat("w_v", d, nkv, true),
                                    vec("b_k", nkv, layer.biasK),
                                    vec("b_v", nkv, layer.biasV),
                                    cache("k_cache"),
                                    cache("v_cache")};
  TemplateValues kvValues = commonValues(config);
  fillKernelArguments(kv, kvValues);
  kvValues["kv_params"] = layerMemoryKVParameters(config);
  kvValues["null_checks"] = nullChecks(kv);
  kvValues["d_model_x8"] = str(d * 8);
  kvValues["cache_row_x8"] = str(nkv * 8);
  kvValues["overlaps"] = readOnly(kv, "k_cache", "cache_bytes") +
                         readOnly(kv, "v_cache", "cache_bytes");
  return entry + fillTemplate("entry-layer-memory-kv.c.in", kvValues);
}

std::string aot::generateEntryLayer(const AttentionConfig &config) {
  if (config.layer)
    return generateLayerEntryLayer(config) +
           generateLayerBackwardEntry(config) +
           generateLayerDecodeEntries(config) + generateCommonEntries(config);
  bool bshd = config.layout == Layout::BSHD;
  auto dims = [&](int64_t heads, StringRef len, int64_t dim) {
    return bshd ? llvm::formatv("batch, {0}, {1}, {2}", len, heads, dim).str()
                : llvm::formatv("batch, {0}, {1}, {2}", heads, len, dim).str();
  };
  TemplateValues values = commonValues(config);
  values["q_dims"] = dims(config.heads.query, "q_len", config.headDim);
  values["k_dims"] = dims(config.heads.kv, "kv_len", config.headDim);
  values["v_dims"] = dims(config.heads.kv, "kv_len", config.valueHeadDim);
  values["out_dims"] = dims(config.outputHeads(), "q_len", config.valueHeadDim);
  values["out_heads"] = std::to_string(config.outputHeads());
  // NAME_forward_strided's [B, H, S, D] views.
  values["q_heads"] = std::to_string(config.heads.query);
  values["kv_heads"] = std::to_string(config.heads.kv);
  values["head_dim"] = std::to_string(config.headDim);
  values["value_head_dim"] = std::to_string(config.valueHeadDim);
  values["layout"] = bshd ? "BSHD" : "BHSD";
  values["head_axis"] = bshd ? "2" : "1";
  values["pos_axis"] = bshd ? "1" : "2";
  std::string entry = fillTemplate("entry-attention.c.in", values) +
                      fillTemplate("memref-copy.c.in", values);
  if (config.target == Target::CPU) {
    TemplateValues decode = commonValues(config);
    decode["q_dims"] = dims(config.heads.query, "new_len", config.headDim);
    decode["k_cache_dims"] = dims(config.heads.kv, "capacity", config.headDim);
    decode["v_cache_dims"] =
        dims(config.heads.kv, "capacity", config.valueHeadDim);
    decode["k_new_dims"] = dims(config.heads.kv, "new_len", config.headDim);
    decode["v_new_dims"] =
        dims(config.heads.kv, "new_len", config.valueHeadDim);
    decode["out_dims"] =
        dims(config.outputHeads(), "new_len", config.valueHeadDim);
    entry += fillTemplate("entry-decode.c.in", decode);
    entry += fillTemplate("entry-training-cpu.c.in", values);
  }
  return entry + generateCommonEntries(config);
}

std::string aot::generateCommonEntries(const AttentionConfig &config) {
  bool cuda = config.target == Target::CUDA;
  bool half = config.elementKind != ElementKind::F32;
  TemplateValues values = commonValues(config);
  values["overflow_note"] = cuda ? ", or the grid is too large" : "";
  values["misaligned_message"] =
      cuda && half ? "a pointer is not 16-byte aligned"
                   : "a pointer is not aligned to the element size";
  values["cuda_cases"] =
      cuda ? fillTemplate("common-cuda-cases.c.in", values) : "";
  // A CPU library's NAME_config names its ISA level: the dispatch source
  // (CPULevels.cpp) defines it.
  values["cpu_cases"] =
      cuda ? "" : fillTemplate("common-cpu-cases.c.in", values);
  values["config_function"] =
      cuda ? fillTemplate("config-static.c.in", values) : "";
  return fillTemplate("common.c.in", values);
}

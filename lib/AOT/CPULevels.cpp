//===- CPULevels.cpp - One CPU library for several x86-64 ISA levels ------===//
//
// A CPU library holds its kernels once per instruction-set level (AVX2,
// AVX-512, AVX-512 + bf16 by default), each public function renamed with the
// level as suffix, and one trampoline per public function that jumps through
// a table indexed by the level chosen once, at the first call, by CPUID
// (ggml's all-variants build, oneDNN's dispatcher). The trampolines are
// generated from the module's function list, so every kernel the module
// holds gets dispatch without naming it here.
//
//===----------------------------------------------------------------------===//

#include "DriverSupport.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

SmallVector<CPULevel> aot::resolveCPULevels(StringRef cpu) {
  // Best first: the dispatcher takes the first level the CPU runs. The
  // generic x86-64-v4 model keeps 512-bit vectors for explicit vector code.
  static const CPULevel all[] = {
      {"avx512bf16", "x86-64-v4", "+avx512bf16", {}},
      {"avx512", "x86-64-v4", "", {}},
      {"avx2", "x86-64-v3", "", {}},
  };
  if (cpu == "all")
    return SmallVector<CPULevel>(std::begin(all), std::end(all));
  for (const CPULevel &level : all)
    if (cpu == level.name)
      return {level};
  return {{cpu.str(), cpu.str(), "", {}}};
}

void aot::setCPULevelChecks(CPULevel &level,
                            const llvm::MCSubtargetInfo &subtarget) {
  // Features both LLVM and __builtin_cpu_supports name, that code generated
  // for the level may use; compiler-rt also checks that the OS saves the
  // AVX/AVX-512 registers.
  static const char *const known[] = {
      "popcnt",     "avx",        "avx2",       "fma",       "bmi2",
      "avx512f",    "avx512cd",   "avx512bw",   "avx512dq",  "avx512vl",
      "avx512bf16", "avx512vnni", "avx512vbmi", "avx512ifma"};
  level.checks.clear();
  for (const char *feature : known)
    if (subtarget.checkFeatures(std::string("+") + feature))
      level.checks.push_back(feature);
}

std::string aot::cpuLevelSymbolPrefix(const AttentionConfig *config) {
  return config ? config->name : "sqa_module";
}

static std::string quoted(StringRef text) { return "\"" + text.str() + "\""; }

std::string aot::generateDispatchSource(ArrayRef<CPULevel> levels,
                                        const AttentionConfig *config) {
  SmallVector<std::string> names, checks, levelConfigs, failureConfigs;
  SmallVector<StringRef> plainNames;
  for (const CPULevel &level : levels)
    plainNames.push_back(level.name);
  std::string list = llvm::join(plainNames, ",");
  for (auto [index, level] : llvm::enumerate(levels)) {
    names.push_back(quoted(level.name));
    SmallVector<std::string> calls;
    for (const std::string &feature : level.checks)
      calls.push_back("__builtin_cpu_supports(\"" + feature + "\")");
    checks.push_back("  case " + std::to_string(index) + ": return " +
                     (calls.empty() ? "1" : llvm::join(calls, " && ")) + ";\n");
  }
  TemplateValues values;
  values["prefix"] = cpuLevelSymbolPrefix(config);
  values["level_count"] = std::to_string(levels.size());
  values["level_names"] = llvm::join(names, ", ");
  values["level_list"] = list;
  values["level_checks"] = llvm::join(checks, "");
  std::string source = fillTemplate("dispatch-cpu.c.in", values);
  if (!config)
    return source;
  // NAME_config() names the level in use (key=value pairs, no spaces).
  std::string base = config->describe() + " cpu_levels=" + list;
  for (const CPULevel &level : levels)
    levelConfigs.push_back(quoted(base + " cpu_level=" + level.name));
  for (StringRef failure :
       {"forced_level_not_built", "forced_level_unsupported", "no_level"})
    failureConfigs.push_back(
        quoted(base + " cpu_level=none cpu_error=" + failure.str()));
  values["name"] = config->name;
  values["level_configs"] = llvm::join(levelConfigs, ",\n      ");
  values["failure_configs"] = llvm::join(failureConfigs, ",\n      ");
  return source + fillTemplate("dispatch-config.c.in", values);
}

void aot::renameForCPULevel(llvm::Module &module, const CPULevel &level,
                            StringRef cpu, StringRef features,
                            SmallVectorImpl<std::string> *publicFunctions) {
  for (llvm::Function &function : module) {
    if (function.isDeclaration())
      continue;
    if (publicFunctions && !function.hasLocalLinkage())
      publicFunctions->push_back(function.getName().str());
    function.addFnAttr("target-cpu", cpu);
    if (!features.empty())
      function.addFnAttr("target-features", features);
  }
  // Every level defines the same symbols: only the trampolines keep the
  // plain names. Local functions (OpenMP bodies) get the suffix too, so the
  // assembly names each level's loops.
  for (llvm::GlobalValue &value : module.global_values()) {
    if (value.isDeclaration() ||
        (value.hasLocalLinkage() && !isa<llvm::Function>(value)))
      continue;
    value.setName(value.getName() + "_" + level.name);
    if (!value.hasLocalLinkage())
      value.setVisibility(llvm::GlobalValue::HiddenVisibility);
  }
}

void aot::addCPUDispatch(llvm::Module &module,
                         ArrayRef<std::string> publicFunctions,
                         ArrayRef<CPULevel> levels, StringRef prefix) {
  llvm::LLVMContext &context = module.getContext();
  llvm::Type *ptr = llvm::PointerType::get(context, 0);
  llvm::FunctionCallee choose = module.getOrInsertFunction(
      (prefix + "_cpu_level_or_abort").str(),
      llvm::FunctionType::get(llvm::Type::getInt32Ty(context), false));
  for (const std::string &name : publicFunctions) {
    SmallVector<llvm::Constant *> entries;
    for (const CPULevel &level : levels)
      entries.push_back(module.getFunction(name + "_" + level.name));
    auto *first = llvm::cast<llvm::Function>(entries.front());
    auto *tableType = llvm::ArrayType::get(ptr, entries.size());
    auto *table = new llvm::GlobalVariable(
        module, tableType, /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage,
        llvm::ConstantArray::get(tableType, entries), name + ".levels");

    llvm::Function *trampoline = llvm::Function::Create(
        first->getFunctionType(), llvm::GlobalValue::ExternalLinkage, name,
        module);
    trampoline->setCallingConv(first->getCallingConv());
    // ABI-relevant parameter attributes must match for a musttail call.
    llvm::AttributeList attributes = llvm::AttributeList::get(
        context, llvm::AttributeSet(), first->getAttributes().getRetAttrs(),
        [&] {
          SmallVector<llvm::AttributeSet> params;
          for (unsigned i = 0; i < first->arg_size(); ++i)
            params.push_back(first->getAttributes().getParamAttrs(i));
          return params;
        }());
    trampoline->setAttributes(attributes);
    llvm::IRBuilder<> builder(
        llvm::BasicBlock::Create(context, "entry", trampoline));
    llvm::Value *index = builder.CreateCall(choose);
    llvm::Value *slot = builder.CreateInBoundsGEP(tableType, table,
                                                  {builder.getInt64(0), index});
    llvm::Value *callee = builder.CreateLoad(ptr, slot);
    SmallVector<llvm::Value *> args;
    for (llvm::Argument &arg : trampoline->args())
      args.push_back(&arg);
    llvm::CallInst *call =
        builder.CreateCall(first->getFunctionType(), callee, args);
    call->setTailCallKind(llvm::CallInst::TCK_MustTail);
    call->setCallingConv(first->getCallingConv());
    call->setAttributes(attributes);
    if (call->getType()->isVoidTy())
      builder.CreateRetVoid();
    else
      builder.CreateRet(call);
  }
}

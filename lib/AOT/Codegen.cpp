//===- Codegen.cpp - LLVM IR, objects and shared libraries ----------------===//

#include "DriverSupport.h"
#include "sqa/AOT/AttentionLibrary.h"
#include "sqa/Pipelines/Pipelines.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/Linker/Linker.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;
using namespace mlir::sqa;
using namespace mlir::sqa::aot;

static std::unique_ptr<llvm::TargetMachine>
createTargetMachine(StringRef cpu, StringRef extraFeatures,
                    std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return nullptr;

  std::string cpuName = cpu.str();
  std::string features;
  if (cpu == "native") {
    cpuName = llvm::sys::getHostCPUName().str();
    std::vector<std::string> enabled;
    for (const auto &feature : llvm::sys::getHostCPUFeatures())
      enabled.push_back((feature.second ? "+" : "-") + feature.first().str());
    features = llvm::join(enabled, ",");
  }
  if (!extraFeatures.empty())
    features = features.empty() ? extraFeatures.str()
                                : features + "," + extraFeatures.str();
  // Check the name first: LLVM only warns about unknown CPUs.
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, "", ""));
  if (!subtarget || !subtarget->isCPUStringValid(cpuName)) {
    error = "unknown CPU '" + cpuName + "' for " + triple.str() +
            " (try 'native', or a name from 'llc -mcpu=help')";
    return nullptr;
  }
  // A 32-bit x86 CPU is a valid name, but LLVM aborts on 64-bit code for it.
  if (triple.isX86() && triple.isArch64Bit()) {
    std::unique_ptr<llvm::MCSubtargetInfo> chosen(
        target->createMCSubtargetInfo(triple, cpuName, ""));
    if (!chosen->checkFeatures("+64bit")) {
      error = "CPU '" + cpuName + "' cannot run " + triple.str() +
              " code (it is a 32-bit CPU); try 'native' or a 64-bit CPU";
      return nullptr;
    }
  }
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpuName, features, llvm::TargetOptions(), llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    error = "cannot create a target machine for " + triple.str();
  return machine;
}

static bool emitMachineCode(llvm::Module &module, llvm::TargetMachine &machine,
                            llvm::CodeGenFileType kind, StringRef path,
                            std::string &error) {
  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return fail(error, "cannot write '" + path + "': " + ec.message());
  llvm::legacy::PassManager passes;
  if (machine.addPassesToEmitFile(passes, out.os(), nullptr, kind))
    return fail(error, "the target cannot emit this file type");
  passes.run(module);
  out.keep();
  return true;
}

/// Runs the CPU pipeline on `module` for `machine`'s vector width and
/// translates it to LLVM IR; null with `error` set on failure.
static std::unique_ptr<llvm::Module>
lowerToLLVMIR(ModuleOp module, const CodegenOptions &options,
              llvm::TargetMachine &machine, llvm::LLVMContext &llvmContext,
              std::string &error) {
  PassManager pm(module.getContext());
  SQACPUPipelineOptions pipelineOptions;
  pipelineOptions.attentionKernel = options.attentionKernel;
  // 16 f32 lanes where the target has AVX-512, else AVX2's 8.
  pipelineOptions.vectorWidth =
      machine.getMCSubtargetInfo()->checkFeatures("+avx512f") ? 16 : 8;
  if (options.cpuVectorWidth)
    pipelineOptions.vectorWidth = *options.cpuVectorWidth;
  // bf16 attention: vdpbf16ps where the level has it (the pass falls back
  // to the f32 kernels where the shape does not allow it).
  pipelineOptions.bf16Dot =
      machine.getMCSubtargetInfo()->checkFeatures("+avx512bf16");
  if (options.cpuQueryTile)
    pipelineOptions.queryTile = *options.cpuQueryTile;
  if (options.cpuKVBlock)
    pipelineOptions.kvBlock = *options.cpuKVBlock;
  if (options.cpuMR)
    pipelineOptions.rowsPerKernel = *options.cpuMR;
  if (options.cpuNR)
    pipelineOptions.vectorsPerKernel = *options.cpuNR;
  // The micro-kernel covers nr vectors of keys at a time. A --cpu-kv-block
  // chosen for AVX2's 8 lanes still builds the AVX-512 levels: without an
  // explicit width, narrower vectors are used where 16 lanes do not divide.
  auto keysPerKernel = [&] {
    return pipelineOptions.vectorsPerKernel * pipelineOptions.vectorWidth;
  };
  if (!options.cpuVectorWidth)
    while (pipelineOptions.vectorWidth > 4 &&
           pipelineOptions.kvBlock % keysPerKernel() != 0)
      pipelineOptions.vectorWidth = pipelineOptions.vectorWidth / 2;
  if (options.attentionKernel == "flash" &&
      pipelineOptions.kvBlock % keysPerKernel() != 0) {
    fail(error,
         "--cpu-kv-block (" +
             Twine(static_cast<int64_t>(pipelineOptions.kvBlock)) +
             ") must be a multiple of --cpu-nr (" +
             Twine(static_cast<int64_t>(pipelineOptions.vectorsPerKernel)) +
             ") x the vector width (" +
             Twine(static_cast<int64_t>(pipelineOptions.vectorWidth)) + ")");
    return nullptr;
  }
  buildCPUPipeline(pm, pipelineOptions);
  if (failed(pm.run(module))) {
    fail(error, "lowering to the LLVM dialect failed");
    return nullptr;
  }
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "sqa-aot");
  if (!llvmModule)
    fail(error, "translation to LLVM IR failed");
  return llvmModule;
}

bool aot::compileModule(ModuleOp module, const CodegenOptions &options,
                        const AttentionConfig *config, StringRef outputPath,
                        std::string &error) {
  if (options.emit == EmitKind::MLIR) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module.print(os);
    return writeFile(outputPath, text, error);
  }

  // Fail on a bad CPU or an unwritable output before any real work. Each
  // ISA level gets its own target machine; with several, the module (the
  // trampolines) is compiled for baseline x86-64 and each level's functions
  // carry their level's target attributes.
  SmallVector<CPULevel> levels = resolveCPULevels(options.cpu);
  bool dispatch = levels.size() > 1;
  SmallVector<std::unique_ptr<llvm::TargetMachine>> levelMachines;
  for (CPULevel &level : levels) {
    levelMachines.push_back(
        createTargetMachine(level.cpu, level.features, error));
    if (!levelMachines.back())
      return false;
    setCPULevelChecks(level, *levelMachines.back()->getMCSubtargetInfo());
  }
  std::unique_ptr<llvm::TargetMachine> baseline;
  if (dispatch) {
    baseline = createTargetMachine("x86-64", "", error);
    if (!baseline)
      return false;
  }
  llvm::TargetMachine *machine =
      dispatch ? baseline.get() : levelMachines.front().get();
  SmallString<128> outputDir = llvm::sys::path::parent_path(outputPath);
  if (outputDir.empty())
    outputDir = ".";
  if (!llvm::sys::fs::is_directory(outputDir) ||
      llvm::sys::fs::access(outputDir, llvm::sys::fs::AccessMode::Write))
    return fail(error, "cannot write '" + outputPath + "': directory '" +
                           outputDir + "' does not exist or is not writable");

  MLIRContext *context = module.getContext();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  context->appendDialectRegistry(registry);

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  SmallVector<std::string> publicFunctions;
  for (auto [level, levelMachine] : llvm::zip_equal(levels, levelMachines)) {
    // Each level lowers its own copy: the vector width follows the level.
    OwningOpRef<ModuleOp> copy;
    ModuleOp levelModule = module;
    if (dispatch) {
      copy = module.clone();
      levelModule = *copy;
    }
    std::string levelError;
    std::unique_ptr<llvm::Module> lowered = lowerToLLVMIR(
        levelModule, options, *levelMachine, llvmContext, levelError);
    if (!lowered)
      return fail(error, dispatch
                             ? levelError + " (ISA level " + level.name + ")"
                             : levelError);
    if (!dispatch) {
      llvmModule = std::move(lowered);
      break;
    }
    renameForCPULevel(*lowered, level, levelMachine->getTargetCPU(),
                      levelMachine->getTargetFeatureString(),
                      llvmModule ? nullptr : &publicFunctions);
    if (!llvmModule)
      llvmModule = std::move(lowered);
    else if (llvm::Linker::linkModules(*llvmModule, std::move(lowered)))
      return fail(error, "linking the ISA levels' modules failed");
  }
  llvmModule->setTargetTriple(machine->getTargetTriple());
  llvmModule->setDataLayout(machine->createDataLayout());
  if (dispatch)
    addCPUDispatch(*llvmModule, publicFunctions, levels,
                   cpuLevelSymbolPrefix(config));
  // With a generated entry layer, only its functions form the library's API.
  if (config)
    for (llvm::Function &function : *llvmModule)
      // Local functions (OpenMP bodies) must keep default visibility: the
      // IR is invalid otherwise (--emit llvm would not parse back).
      if (!function.isDeclaration() && !function.hasLocalLinkage())
        function.setVisibility(llvm::GlobalValue::HiddenVisibility);
  if (llvm::Error err =
          makeOptimizingTransformer(3, 0, machine)(llvmModule.get()))
    return fail(error,
                "LLVM optimization failed: " + llvm::toString(std::move(err)));

  switch (options.emit) {
  case EmitKind::LLVMIR: {
    std::string text;
    llvm::raw_string_ostream os(text);
    llvmModule->print(os, nullptr);
    return writeFile(outputPath, text, error);
  }
  case EmitKind::Assembly:
    return emitMachineCode(*llvmModule, *machine,
                           llvm::CodeGenFileType::AssemblyFile, outputPath,
                           error);
  case EmitKind::Object:
    return emitMachineCode(*llvmModule, *machine,
                           llvm::CodeGenFileType::ObjectFile, outputPath,
                           error);
  case EmitKind::PTX:
  case EmitKind::Cubin:
    return fail(error, "PTX and cubins come from CUDA libraries");
  case EmitKind::SharedLibrary:
  case EmitKind::MLIR:
    break;
  }

  ScratchDir scratch;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("sqa-aot", scratch.path))
    return fail(error, "cannot create a scratch directory: " + ec.message());
  SmallString<128> object(scratch.path), entry(scratch.path),
      header(scratch.path);
  llvm::sys::path::append(object, "kernel.o");
  if (!emitMachineCode(*llvmModule, *machine, llvm::CodeGenFileType::ObjectFile,
                       object, error))
    return false;
  // The level chooser (and, with a configuration, NAME_config).
  SmallString<128> dispatchSource(scratch.path);
  llvm::sys::path::append(dispatchSource, "dispatch.c");
  if (!writeFile(dispatchSource, generateDispatchSource(levels, config), error))
    return false;

  std::string clang = findClang(options);
  if (clang.empty())
    return fail(error, "cannot find clang (install clang-22 or pass --clang)");
  // f32 -> bf16 rounding lowers to __truncsfbf2, which libgcc lacks: link
  // compiler-rt's builtins (statically) instead.
  SmallVector<std::string> args = {clang,
                                   "-shared",
                                   "-fPIC",
                                   "-O2",
                                   "-fuse-ld=lld",
                                   "--rtlib=compiler-rt",
                                   "-o",
                                   outputPath.str(),
                                   object.str().str(),
                                   dispatchSource.str().str()};
  if (config) {
    llvm::sys::path::append(entry, "entry.c");
    llvm::sys::path::append(header, config->name + ".h");
    if (!writeFile(header, generateHeader(*config), error) ||
        !writeFile(entry, generateEntryLayer(*config), error))
      return false;
    args.push_back(entry.str().str());
    args.push_back("-I" + scratch.path.str().str());
  }
  // The flash kernel's parallel loops call the OpenMP runtime.
  args.push_back("-L" SQA_LLVM_LIBRARY_DIR);
  args.push_back("-Wl,-rpath," SQA_LLVM_LIBRARY_DIR);
  args.push_back("-lomp");
  args.push_back("-lm");
  SmallVector<StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int status = llvm::sys::ExecuteAndWait(clang, argRefs, std::nullopt, {}, 0, 0,
                                         &message);
  if (status != 0)
    return fail(error, "linking with '" + clang + "' failed" +
                           (message.empty() ? "" : ": " + message));
  return checkProduced(clang, outputPath, error);
}

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
createTargetMachine(StringRef cpu, std::string &error) {
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

bool aot::compileModule(ModuleOp module, const CodegenOptions &options,
                        const AttentionConfig *config, StringRef outputPath,
                        std::string &error) {
  if (options.emit == EmitKind::MLIR) {
    std::string text;
    llvm::raw_string_ostream os(text);
    module.print(os);
    return writeFile(outputPath, text, error);
  }

  // Fail on a bad CPU or an unwritable output before any real work.
  std::unique_ptr<llvm::TargetMachine> machine =
      createTargetMachine(options.cpu, error);
  if (!machine)
    return false;
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

  PassManager pm(context);
  SQACPUPipelineOptions pipelineOptions;
  pipelineOptions.attentionKernel = options.attentionKernel;
  // 16 f32 lanes where the target has AVX-512, else AVX2's 8.
  pipelineOptions.vectorWidth =
      machine->getMCSubtargetInfo()->checkFeatures("+avx512f") ? 16 : 8;
  if (options.cpuVectorWidth)
    pipelineOptions.vectorWidth = *options.cpuVectorWidth;
  if (options.cpuQueryTile)
    pipelineOptions.queryTile = *options.cpuQueryTile;
  if (options.cpuKVBlock)
    pipelineOptions.kvBlock = *options.cpuKVBlock;
  if (options.cpuMR)
    pipelineOptions.rowsPerKernel = *options.cpuMR;
  if (options.cpuNR)
    pipelineOptions.vectorsPerKernel = *options.cpuNR;
  // The micro-kernel covers nr vectors of keys at a time.
  int64_t keysPerKernel =
      pipelineOptions.vectorsPerKernel * pipelineOptions.vectorWidth;
  if (options.attentionKernel == "flash" &&
      pipelineOptions.kvBlock % keysPerKernel != 0)
    return fail(
        error,
        "--cpu-kv-block (" +
            Twine(static_cast<int64_t>(pipelineOptions.kvBlock)) +
            ") must be a multiple of --cpu-nr (" +
            Twine(static_cast<int64_t>(pipelineOptions.vectorsPerKernel)) +
            ") x the vector width (" +
            Twine(static_cast<int64_t>(pipelineOptions.vectorWidth)) + ")");
  buildCPUPipeline(pm, pipelineOptions);
  if (failed(pm.run(module)))
    return fail(error, "lowering to the LLVM dialect failed");

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext, "sqa-aot");
  if (!llvmModule)
    return fail(error, "translation to LLVM IR failed");
  llvmModule->setTargetTriple(machine->getTargetTriple());
  llvmModule->setDataLayout(machine->createDataLayout());
  // With a generated entry layer, only its functions form the library's API.
  if (config)
    for (llvm::Function &function : *llvmModule)
      if (!function.isDeclaration())
        function.setVisibility(llvm::GlobalValue::HiddenVisibility);
  if (llvm::Error err =
          makeOptimizingTransformer(3, 0, machine.get())(llvmModule.get()))
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

  std::string clang = findClang(options);
  if (clang.empty())
    return fail(error, "cannot find clang (install clang-22 or pass --clang)");
  // f32 -> bf16 rounding lowers to __truncsfbf2, which libgcc lacks: link
  // compiler-rt's builtins (statically) instead.
  SmallVector<std::string> args = {
      clang, "-shared",        "-fPIC",
      "-O2", "-fuse-ld=lld",   "--rtlib=compiler-rt",
      "-o",  outputPath.str(), object.str().str()};
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

//===- SQABase.td - SQA dialect definition -----------------*- tablegen -*-===//
//
// The sqa dialect: grouped and sparse-query attention (MHA, GQA, MQA and the
// Sparse Query Attention family) as first-class ops, so that the head
// configuration is visible to the passes that tile and vectorize it.
//
//===----------------------------------------------------------------------===//

#ifndef SQA_BASE_TD
#define SQA_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def SQA_Dialect : Dialect {
  let name = "sqa";
  let cppNamespace = "::mlir::sqa";
  let summary = "Grouped and sparse-query attention";
  let description = [{
    The `sqa` dialect expresses attention whose query and key/value head
    counts differ: multi-head (MHA), grouped-query (GQA), multi-query (MQA)
    and Sparse Query Attention (SQA, sSQA, xSQA, xSMQA, reverse SQA). Head
    counts and head dimensions are static, since they are what a kernel is
    specialized on; batch and sequence lengths may be dynamic.
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

class SQA_Op<string mnemonic, list<Trait> traits = []>
    : Op<SQA_Dialect, mnemonic, traits>;

class SQA_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<SQA_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // SQA_BASE_TD

// `hangar make-model`: writes a random-weight llama/qwen2/qwen3 GGUF model of any shape, for
// tests, benchmarks and the demo (see gguf/model_maker.h).
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "gguf/model_maker.h"

namespace hangar::cli {

void register_make_model(CLI::App& root, Commands& commands) {
  CLI::App* app = root.add_subcommand("make-model", "Write a random-weight test model (GGUF)");
  auto spec = std::make_shared<gguf::ModelSpec>();
  auto type = std::make_shared<std::string>("f32");
  auto out = std::make_shared<std::string>();
  app->add_option("--arch", spec->arch, "llama, qwen2 or qwen3")->capture_default_str();
  app->add_option("--name", spec->name, "general.name (default: the architecture)");
  app->add_option("--n-embd", spec->n_embd, "embedding width")->capture_default_str();
  app->add_option("--n-layer", spec->n_layer, "layers")->capture_default_str();
  app->add_option("--n-head", spec->n_head, "attention heads")->capture_default_str();
  app->add_option("--n-head-kv", spec->n_head_kv, "key/value heads")->capture_default_str();
  app->add_option("--head-dim", spec->head_dim, "head dimension (default n-embd / n-head)");
  app->add_option("--n-ff", spec->n_ff, "feed-forward width")->capture_default_str();
  app->add_option("--ctx", spec->n_ctx, "context length")->capture_default_str();
  app->add_option("--n-vocab", spec->n_vocab,
                  "vocabulary size of the synthetic vocabulary (without --vocab-from)")
      ->capture_default_str();
  app->add_option("--type", *type,
                  "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q6_K, or q4_k_m "
                  "(llama-quantize's Q4_K_M mixture of Q4_K and Q6_K)")
      ->capture_default_str();
  app->add_option("--seed", spec->seed, "random seed")->capture_default_str();
  app->add_flag("--tie-embeddings", spec->tie_embeddings, "no output.weight");
  app->add_option("--rope-freq-base", spec->rope_freq_base, "default 10000 (llama), 1e6 (qwen)");
  app->add_option("--vocab-from", spec->vocab_from, "copy every tokenizer.* key from this GGUF");
  app->add_option("--threads", spec->threads, "generator threads (default: all cores)");
  app->add_option("-o,--output", *out, "the .gguf file to write")->required();
  commands.push_back({app, [spec, type, out] {
                        if (!gguf::set_model_type(*type, spec.get())) {
                          std::fprintf(stderr, "hangar make-model: unknown --type '%s'\n",
                                       type->c_str());
                          return 2;
                        }
                        if (Status s = gguf::write_model(*spec, *out); !s.ok()) {
                          std::fprintf(stderr, "hangar make-model: %s\n", s.message().c_str());
                          return 1;
                        }
                        return 0;
                      }});
}

}  // namespace hangar::cli

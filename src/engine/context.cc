#include "engine/context.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "engine/fp16.h"
#include "estimate/memory_plan.h"
#include "engine/ops.h"

namespace hangar::engine {
namespace {

// Weight rows per tile of a matmul: the tile stays in cache while every token of the step
// passes over it (the batched kernels work on 16 rows at a time).
constexpr int64_t kRowTile = 16;

// Rows [first, second) of n_out that share ith of nth computes: whole tiles of kRowTile rows.
std::pair<int64_t, int64_t> share_rows(int64_t n_out, int ith, int nth) {
  const int64_t tiles = (n_out + kRowTile - 1) / kRowTile;
  const int64_t per = (tiles + nth - 1) / nth;
  return {std::min(n_out, per * ith * kRowTile), std::min(n_out, per * (ith + 1) * kRowTile)};
}

// From this many tokens on, matmul_multi gives each thread one share of each weight.
constexpr int kMinTokensPerShare = 4;

void add_rows(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

Context::Context(const Model& model, const ContextParams& params)
    : model_(model),
      hp_(model.hparams()),
      pool_(params.n_threads),
      ranges_(std::make_unique<ChunkRange[]>(static_cast<size_t>(pool_.size()))) {}

Context::~Context() = default;

StatusOr<std::unique_ptr<Context>> Context::create(const Model& model, const ContextParams& params) {
  const HParams& hp = model.hparams();
  // Every buffer is sized by the memory plan's layout, so the plan and the allocation agree.
  HANGAR_ASSIGN_OR_RETURN(const estimate::ComputeLayout layout,
                          estimate::compute_layout(hp, params.n_ctx, params.n_seq_max, params.n_batch,
                                                   params.n_threads, params.n_seq_max));
  std::unique_ptr<Context> c(new Context(model, params));
  c->n_seq_max_ = layout.n_seq;
  c->n_ctx_seq_ = layout.n_ctx_seq;
  c->n_ctx_ = layout.n_ctx;
  c->n_batch_ = layout.n_batch;
  c->k_cache_.assign(layout.k_cache, 0);
  c->v_cache_.assign(layout.v_cache, 0);
  c->valid_.assign(static_cast<size_t>(layout.n_ctx), 0);

  const size_t nb = static_cast<size_t>(c->n_batch_);
  c->x_.resize(nb * hp.n_embd);
  c->xn_.resize(nb * hp.n_embd);
  c->q_.resize(nb * hp.n_embd_q());
  c->k_.resize(nb * hp.n_embd_k_gqa());
  c->v_.resize(nb * hp.n_embd_v_gqa());
  c->attn_.resize(nb * hp.n_head * hp.head_dim_v);
  c->gate_.resize(nb * hp.n_ff);
  c->up_.resize(nb * hp.n_ff);
  c->rope_.resize(nb * hp.n_rot);
  c->act_.resize(layout.act_bytes);
  c->seq_rows_.resize(static_cast<size_t>(layout.n_seq));
  c->attn_scratch_.resize(layout.attn_scratch);
  c->out_rows_.resize(nb);
  c->logits_.resize(layout.logits);
  c->embd_out_.resize(layout.embd_out);
  return c;
}

Status Context::validate(const Batch& b) const {
  const size_t n = b.tokens.size();
  if (n == 0) return invalid_argument_error("decode: the batch is empty");
  if (b.pos.size() != n || b.seq_id.size() != n || b.logits.size() != n) {
    return invalid_argument_error(fmt::format("decode: batch arrays differ in length (tokens {}, pos {}, seq_id {}, logits {})",
                                              n, b.pos.size(), b.seq_id.size(), b.logits.size()));
  }
  for (size_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= hp_.n_vocab) {
      return invalid_argument_error(fmt::format("decode: batch row {}: token id {} is outside [0, {})", i, b.tokens[i], hp_.n_vocab));
    }
    if (b.seq_id[i] < 0 || b.seq_id[i] >= n_seq_max_) {
      return invalid_argument_error(fmt::format("decode: batch row {}: sequence id {} is outside [0, {})", i, b.seq_id[i], n_seq_max_));
    }
    if (b.pos[i] < 0 || b.pos[i] >= n_ctx_seq_) {
      return out_of_range_error(fmt::format("decode: batch row {}: position {} is outside the sequence's context [0, {})",
                                            i, b.pos[i], n_ctx_seq_));
    }
  }
  return ok_status();
}

Status Context::decode(const Batch& batch) {
  HANGAR_RETURN_IF_ERROR(validate(batch));
  const int n = static_cast<int>(batch.size());
  output_of_row_.assign(n, -1);  // capacity reused after the first decode of this size
  int32_t n_out = 0;
  for (int i = 0; i < n; ++i) {
    if (batch.logits[i]) output_of_row_[i] = n_out++;
  }
  n_outputs_ = n_out;
  const size_t need_logits = static_cast<size_t>(n_out) * hp_.n_vocab;
  if (logits_.size() < need_logits) logits_.resize(need_logits);
  if (embd_out_.size() < static_cast<size_t>(n_out) * hp_.n_embd) embd_out_.resize(static_cast<size_t>(n_out) * hp_.n_embd);
  for (int begin = 0; begin < n; begin += n_batch_) {
    forward(batch, begin, std::min(n, begin + n_batch_));
  }
  return ok_status();
}

const float* Context::logits(int32_t i) const {
  if (i < 0) return n_outputs_ > 0 ? logits_.data() + static_cast<size_t>(n_outputs_ - 1) * hp_.n_vocab : nullptr;
  if (static_cast<size_t>(i) >= output_of_row_.size() || output_of_row_[i] < 0) return nullptr;
  return logits_.data() + static_cast<size_t>(output_of_row_[i]) * hp_.n_vocab;
}

const float* Context::embedding(int32_t i) const {
  if (i < 0) return n_outputs_ > 0 ? embd_out_.data() + static_cast<size_t>(n_outputs_ - 1) * hp_.n_embd : nullptr;
  if (static_cast<size_t>(i) >= output_of_row_.size() || output_of_row_[i] < 0) return nullptr;
  return embd_out_.data() + static_cast<size_t>(output_of_row_[i]) * hp_.n_embd;
}

void Context::seq_remove(int32_t seq, int32_t p0, int32_t p1) {
  const int32_t s0 = seq < 0 ? 0 : seq;
  const int32_t s1 = seq < 0 ? n_seq_max_ : std::min(seq + 1, n_seq_max_);
  const int32_t a = std::max(p0, 0);
  const int32_t e = p1 < 0 ? n_ctx_seq_ : std::min(p1, n_ctx_seq_);
  for (int32_t s = s0; s < s1; ++s) {
    for (int32_t p = a; p < e; ++p) valid_[static_cast<size_t>(s) * n_ctx_seq_ + p] = 0;
  }
}

int32_t Context::seq_pos_max(int32_t seq) const {
  if (seq < 0 || seq >= n_seq_max_) return -1;
  for (int32_t p = n_ctx_seq_ - 1; p >= 0; --p) {
    if (valid_[static_cast<size_t>(seq) * n_ctx_seq_ + p]) return p;
  }
  return -1;
}

void Context::matmul(const Weight& w, const float* in, int n_tokens, float* out) {
  const MatmulOut mm{&w, out};
  matmul_multi(&mm, 1, in, static_cast<int>(w.n_in), n_tokens);
}

void Context::matmul_multi(const MatmulOut* mm, int n_mm, const float* in, int n_in, int n_tokens,
                           Then then) {
  // Converted activation rows per weight: one conversion per distinct vec_dot type, placed one
  // after another in act_ (sized for F32 rows, so two quantized or half types fit; a set that
  // does not is computed one weight at a time).
  const uint8_t* act[3];
  size_t stride[3];
  size_t used = 0;
  for (int i = 0; i < n_mm; ++i) {
    const VecDot& k = *mm[i].w->kernel;
    act[i] = nullptr;
    if (k.act_type == gguf::GgmlType::kF32) {
      act[i] = reinterpret_cast<const uint8_t*>(in);
      stride[i] = static_cast<size_t>(n_in) * sizeof(float);
      continue;
    }
    for (int j = 0; j < i; ++j) {
      if (mm[j].w->kernel->act_type == k.act_type) {
        act[i] = act[j];
        stride[i] = stride[j];
      }
    }
    if (act[i]) continue;
    stride[i] = k.act_row_bytes(n_in);
    const size_t need = stride[i] * static_cast<size_t>(n_tokens);
    if (used + need > act_.size()) {
      for (int j = 0; j < n_mm; ++j) matmul_multi(&mm[j], 1, in, n_in, n_tokens);
      if (then == Then::kSwiglu) {
        const int64_t n_out = mm[0].w->n_out;
        pool_.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
          for (int64_t t = b; t < e; ++t) swiglu(mm[0].out + t * n_out, mm[1].out + t * n_out, mm[0].out + t * n_out, n_out);
        });
      }
      return;
    }
    uint8_t* dst = act_.data() + used;
    used += need;
    const size_t st = stride[i];
    if (n_tokens == 1) {
      k.from_float(in, dst, n_in);  // cheaper inline than a parallel region
    } else {
      pool_.parallel_for(n_tokens, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) k.from_float(in + t * n_in, dst + t * st, n_in);
      });
    }
    act[i] = dst;
  }

  // Rows [b, e) of weight i; with SwiGLU after, the same rows of gate and up, then their SwiGLU.
  const bool swiglu_after = then == Then::kSwiglu;
  const int n_lists = swiglu_after ? 1 : n_mm;
  const auto compute = [&](int i, int64_t b, int64_t e) {
    const Weight& w = *mm[i].w;
    const VecDot& k = *w.kernel;
    const int64_t n_out = w.n_out;
    float* out = mm[i].out;
    if (k.gemm) {
      k.gemm(n_in, w.row(b), w.row_bytes, static_cast<int>(e - b), act[i], stride[i], n_tokens,
             out + b, static_cast<size_t>(n_out));
      return;
    }
    for (int64_t r0 = b; r0 < e; r0 += kRowTile) {
      const int64_t r1 = std::min(e, r0 + kRowTile);
      for (int t = 0; t < n_tokens; ++t) {
        const uint8_t* a = act[i] + t * stride[i];
        float* o = out + static_cast<int64_t>(t) * n_out;
        for (int64_t r = r0; r < r1; ++r) o[r] = k.dot(n_in, w.row(r), a);
      }
    }
  };
  const auto run_rows = [&](int list, int64_t b, int64_t e) {
    if (!swiglu_after) {
      compute(list, b, e);
      return;
    }
    compute(0, b, e);
    compute(1, b, e);
    const int64_t n_out = mm[0].w->n_out;
    for (int t = 0; t < n_tokens; ++t) {
      float* g = mm[0].out + static_cast<int64_t>(t) * n_out;
      swiglu(g + b, mm[1].out + static_cast<int64_t>(t) * n_out + b, g + b, e - b);
    }
  };

  // Rows go in whole kRowTile tiles, so a row's result never depends on who computes it.
  if (n_tokens >= kMinTokensPerShare) {
    // A prompt: bound by arithmetic, and a kernel call sets up per-call work for every token,
    // so each thread takes one share of every weight.
    pool_.run([&](int ith, int nth) {
      for (int i = 0; i < n_lists; ++i) {
        const auto [b, e] = share_rows(mm[i].w->n_out, ith, nth);
        if (b < e) run_rows(i, b, e);
      }
    });
    return;
  }

  // Generation: chunks of about kChunkBytes of weights, over the weights one after another.
  // Each thread starts on its own contiguous range of chunks (the rows it streams stay in one
  // order, and the kernels prefetch past a call's last row into the next chunk) and claims
  // them from the front; a thread whose range is done takes chunks from the back of another's.
  // On a shared machine one core can run at half speed for seconds while the other does not,
  // and a fixed split leaves the fast one waiting at the end of every matrix.
  constexpr size_t kChunkBytes = size_t{256} << 10;
  int64_t chunk_rows[3], first_chunk[4];
  first_chunk[0] = 0;
  for (int i = 0; i < n_lists; ++i) {
    const Weight& w = *mm[i].w;
    const size_t bytes = w.row_bytes * (swiglu_after ? 2 : 1);
    const int64_t tiles =
        std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / (bytes * kRowTile)));
    chunk_rows[i] = tiles * kRowTile;
    first_chunk[i + 1] = first_chunk[i] + (w.n_out + chunk_rows[i] - 1) / chunk_rows[i];
  }
  const int nth = pool_.size();
  const int64_t n_chunks = first_chunk[n_lists];
  for (int t = 0; t < nth; ++t) {
    const auto b = static_cast<uint64_t>(n_chunks * t / nth),
               e = static_cast<uint64_t>(n_chunks * (t + 1) / nth);
    ranges_[t].front_back.store(b << 32 | e, std::memory_order_relaxed);
  }
  // Claims chunk `front` of a range (its own thread) or `back - 1` (another); -1 when empty.
  const auto claim = [this](int range, bool own) -> int64_t {
    std::atomic<uint64_t>& fb = ranges_[range].front_back;
    uint64_t v = fb.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t front = v >> 32, back = v & 0xffffffffu;
      if (front >= back) return -1;
      const uint64_t next = own ? v + (uint64_t{1} << 32) : v - 1;
      if (fb.compare_exchange_weak(v, next, std::memory_order_relaxed)) {
        return static_cast<int64_t>(own ? front : back - 1);
      }
    }
  };
  const auto run_chunk = [&](int64_t c) {
    int list = 0;
    while (c >= first_chunk[list + 1]) ++list;
    const int64_t b = (c - first_chunk[list]) * chunk_rows[list];
    run_rows(list, b, std::min(mm[list].w->n_out, b + chunk_rows[list]));
  };
  pool_.run([&](int ith, int n) {
    for (int64_t c; (c = claim(ith, true)) >= 0;) run_chunk(c);
    for (int k = 1; k < n; ++k) {
      for (int64_t c; (c = claim((ith + k) % n, false)) >= 0;) run_chunk(c);
    }
  });
}

void Context::forward(const Batch& batch, int begin, int end) {
  const HParams& hp = hp_;
  const ModelWeights& W = model_.weights();
  const int T = end - begin;
  const int n_embd = hp.n_embd;
  const int n_q = hp.n_embd_q();
  const int n_k = hp.n_embd_k_gqa();
  const int n_v = hp.n_embd_v_gqa();
  const int hd_k = hp.head_dim_k;
  const int hd_v = hp.head_dim_v;
  const int n_attn = hp.n_head * hd_v;
  const int group = hp.n_head / hp.n_head_kv;
  const float eps = hp.rms_eps;
  const int32_t* tok = batch.tokens.data() + begin;
  const int32_t* pos = batch.pos.data() + begin;
  const int32_t* seq = batch.seq_id.data() + begin;

  // Token embeddings (get_rows dequantizes) and this step's rope tables.
  pool_.parallel_for(T, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      W.tok_embd.kernel->to_float(W.tok_embd.row(tok[t]), &x_[t * n_embd], n_embd);
      rope_table(static_cast<float>(pos[t]), hp.n_rot, hp.rope_freq_base, hp.rope_freq_scale,
                 W.rope_freqs, &rope_[t * hp.n_rot]);
    }
  });
  for (int t = 0; t < T; ++t) valid_[static_cast<size_t>(seq[t]) * n_ctx_seq_ + pos[t]] = 1;
  // llama.cpp switches to its tiled attention for batches of >= 64 rows; a sequence takes that
  // path by its own row count, so its results never depend on its neighbours in the batch.
  std::fill(seq_rows_.begin(), seq_rows_.end(), 0);
  for (int t = 0; t < T; ++t) ++seq_rows_[seq[t]];

  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& L = W.layers[il];
    for (int t = 0; t < T; ++t) rms_norm(&x_[t * n_embd], L.attn_norm, &xn_[t * n_embd], n_embd, eps);
    const MatmulOut qkv[3] = {{&L.wq, q_.data()}, {&L.wk, k_.data()}, {&L.wv, v_.data()}};
    matmul_multi(qkv, 3, xn_.data(), n_embd, T);

    // Biases, per-head Q/K norms, rotary embedding; then K and V into the F16 cache.
    uint16_t* k_layer = k_cache_.data() + static_cast<size_t>(il) * n_ctx_ * n_k;
    uint16_t* v_layer = v_cache_.data() + static_cast<size_t>(il) * n_ctx_ * n_v;
    pool_.parallel_for(T, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        float* q = &q_[t * n_q];
        float* k = &k_[t * n_k];
        float* v = &v_[t * n_v];
        if (L.bq) {
          add_rows(q, L.bq, n_q);
          add_rows(k, L.bk, n_k);
          add_rows(v, L.bv, n_v);
        }
        const float* cs = &rope_[t * hp.n_rot];
        for (int h = 0; h < hp.n_head; ++h) {
          if (L.q_norm) rms_norm(q + h * hd_k, L.q_norm, q + h * hd_k, hd_k, eps);
          rope_apply(q + h * hd_k, hp.n_rot, cs, hp.rope_mode);
        }
        for (int h = 0; h < hp.n_head_kv; ++h) {
          if (L.k_norm) rms_norm(k + h * hd_k, L.k_norm, k + h * hd_k, hd_k, eps);
          rope_apply(k + h * hd_k, hp.n_rot, cs, hp.rope_mode);
        }
        const size_t cell = static_cast<size_t>(seq[t]) * n_ctx_seq_ + pos[t];
        uint16_t* kc = k_layer + cell * n_k;
        uint16_t* vc = v_layer + cell * n_v;
        for (int i = 0; i < n_k; ++i) kc[i] = float_to_half(k[i]);
        for (int i = 0; i < n_v; ++i) vc[i] = float_to_half(v[i]);
      }
    });

    // Causal attention of each (token, head) over its sequence's cached positions <= pos. An
    // item is a run of heads sharing one KV head (so the one-row path reads each cached row once
    // for all of them), split finer when there would be fewer items than threads.
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd_k));
    const bool grouped = hd_k <= kAttentionMaxDim && hd_v <= kAttentionMaxDim;
    int run = grouped ? std::min(group, kAttentionMaxRows) : 1;
    while (run > 1 && static_cast<int64_t>(T) * hp.n_head_kv * ((group + run - 1) / run) < pool_.size()) {
      run = (run + 1) / 2;
    }
    const int runs_per_kv = (group + run - 1) / run;
    const int64_t n_items = static_cast<int64_t>(T) * hp.n_head_kv * runs_per_kv;
    pool_.run([&](int ith, int nth) {
      uint16_t* scratch = &attn_scratch_[static_cast<size_t>(ith) * (hd_k + hd_v)];
      for (int64_t it = ith; it < n_items; it += nth) {
        const int t = static_cast<int>(it / (hp.n_head_kv * runs_per_kv));
        const int rest = static_cast<int>(it % (hp.n_head_kv * runs_per_kv));
        const int hk = rest / runs_per_kv;
        const int h0 = hk * group + (rest % runs_per_kv) * run;
        const int h1 = std::min(h0 + run, (hk + 1) * group);
        const size_t first = static_cast<size_t>(seq[t]) * n_ctx_seq_;
        const float* q = &q_[static_cast<size_t>(t) * n_q + h0 * hd_k];
        const uint16_t* k = k_layer + first * n_k + hk * hd_k;
        const uint16_t* v = v_layer + first * n_v + hk * hd_v;
        float* out = &attn_[static_cast<size_t>(t) * n_attn + h0 * hd_v];
        const uint8_t* valid = &valid_[first];
        const int64_t n_kv = pos[t] + 1;
        if (uses_tiled_attention(seq_rows_[seq[t]], hd_v)) {
          for (int h = 0; h < h1 - h0; ++h) {
            attention_row_tiled(q + h * hd_k, k, n_k, v, n_v, valid, n_kv, hd_k, hd_v, scale, out + h * hd_v);
          }
        } else if (grouped) {
          attention_rows(q, hd_k, h1 - h0, k, n_k, v, n_v, valid, n_kv, hd_k, hd_v, scale, out, hd_v);
        } else {
          attention_row(q, k, n_k, v, n_v, valid, n_kv, hd_k, hd_v, scale, scratch, out);
        }
      }
    });

    matmul(L.wo, attn_.data(), T, xn_.data());
    for (int t = 0; t < T; ++t) add_rows(&x_[t * n_embd], &xn_[t * n_embd], n_embd);

    // SwiGLU feed-forward.
    for (int t = 0; t < T; ++t) rms_norm(&x_[t * n_embd], L.ffn_norm, &xn_[t * n_embd], n_embd, eps);
    const MatmulOut gate_up[2] = {{&L.w_gate, gate_.data()}, {&L.w_up, up_.data()}};
    matmul_multi(gate_up, 2, xn_.data(), n_embd, T, Then::kSwiglu);
    matmul(L.w_down, gate_.data(), T, xn_.data());
    for (int t = 0; t < T; ++t) add_rows(&x_[t * n_embd], &xn_[t * n_embd], n_embd);
  }

  // Output norm and head, only for the rows that asked for logits.
  int n_out = 0;
  for (int t = 0; t < T; ++t) {
    if (output_of_row_[begin + t] >= 0) out_rows_[n_out++] = t;
  }
  if (n_out == 0) return;
  const int32_t first_out = output_of_row_[begin + out_rows_[0]];
  float* embd = &embd_out_[static_cast<size_t>(first_out) * n_embd];
  for (int j = 0; j < n_out; ++j) {
    rms_norm(&x_[static_cast<size_t>(out_rows_[j]) * n_embd], W.output_norm, embd + static_cast<size_t>(j) * n_embd, n_embd, eps);
  }
  matmul(W.output, embd, n_out, &logits_[static_cast<size_t>(first_out) * hp.n_vocab]);
}

}  // namespace hangar::engine

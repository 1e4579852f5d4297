"""The keys each framework accepts, taken from its argument classes at a named version.

A file is read as a framework's only when its keys are that framework's, and a
patch writes only keys the framework accepts (``pytest_goblin.workload.read``
checks every edit against these lists before a diff is shown). Each list is
the set of field names of the classes named beside it, read from the source
at the version given; a framework that refuses unknown keys is ``strict``
(HfArgumentParser with ``allow_extra_keys=False``), one that ignores them is
not (a key it does not know would be silently dropped, so a patch must still
never write one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def _keys(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class Vocabulary:
    """The top-level keys one framework accepts, and where that list comes from."""

    framework: str
    keys: frozenset[str]
    source: str
    """The version and source files the keys were read from."""
    strict: bool
    """The framework refuses a file with a key outside ``keys`` (rather than ignoring it)."""

    def unknown(self, keys: Iterable[object]) -> list[str]:
        """The given keys this framework does not accept, sorted."""
        return sorted(str(key) for key in keys if key not in self.keys)


TRAINING_ARGUMENTS = _keys(
    """
    accelerator_config activation_checkpointing activation_checkpointing_kwargs adafactor
    adam_beta1 adam_beta2 adam_epsilon auto_find_batch_size average_tokens_across_devices
    batch_eval_metrics bf16 bf16_full_eval data_seed dataloader_drop_last dataloader_in_order
    dataloader_multiprocessing_context dataloader_num_workers dataloader_persistent_workers
    dataloader_pin_memory dataloader_prefetch_factor ddp_backend ddp_broadcast_buffers
    ddp_bucket_cap_mb ddp_find_unused_parameters ddp_static_graph ddp_timeout debug deepspeed
    disable_tqdm do_eval do_predict do_train enable_jit_checkpoint eval_accumulation_steps
    eval_delay eval_do_concat_batches eval_on_start eval_steps eval_strategy
    eval_use_gather_object fp16 fp16_backend fp16_full_eval fp16_opt_level fsdp fsdp_config
    fsdp_min_num_params fsdp_transformer_layer_cls_to_wrap full_determinism
    gradient_accumulation_steps gradient_checkpointing gradient_checkpointing_kwargs
    greater_is_better group_by_length half_precision_backend hub_always_push hub_model_id
    hub_private_repo hub_revision hub_strategy hub_token ignore_data_skip include_for_metrics
    include_inputs_for_metrics include_num_input_tokens_seen include_tokens_per_second
    jit_mode_eval label_names label_smoothing_factor learning_rate length_column_name
    liger_kernel_config load_best_model_at_end local_rank log_level log_level_replica
    log_on_each_node logging_dir logging_first_step logging_nan_inf_filter logging_steps
    logging_strategy lr_scheduler_kwargs lr_scheduler_type max_grad_norm max_steps
    metric_for_best_model mp_parameters neftune_noise_alpha no_cuda num_train_epochs optim
    optim_args optim_target_modules output_dir overwrite_output_dir parallelism_config
    past_index per_device_eval_batch_size per_device_train_batch_size per_gpu_eval_batch_size
    per_gpu_train_batch_size prediction_loss_only project push_to_hub push_to_hub_model_id
    push_to_hub_organization push_to_hub_token ray_scope remove_unused_columns report_to
    restore_callback_states_from_checkpoint resume_from_checkpoint run_name save_on_each_node
    save_only_model save_safetensors save_steps save_strategy save_total_limit seed
    skip_memory_metrics tf32 torch_compile torch_compile_backend torch_compile_mode
    torch_empty_cache_steps torchdynamo tpu_metrics_debug tpu_num_cores trackio_bucket_id
    trackio_space_id trackio_static_space_id train_sampling_strategy use_cache use_cpu
    use_legacy_prediction_loop use_liger_kernel use_mps_device warmup_ratio warmup_steps
    weight_decay
    """
)

SEQ2SEQ_TRAINING_ARGUMENTS = _keys(
    """
    generation_config generation_max_length generation_num_beams predict_with_generate
    sortish_sampler
    """
)
"""transformers ``TrainingArguments`` fields: the union of v4.57.6 and v5.25.0
(``src/transformers/training_args.py``), since the frameworks below accept either line."""


TRL_SFT = _keys(
    """
    activation_offloading assistant_only_loss attn_implementation average_tokens_across_devices
    bf16 bnb_4bit_quant_storage bnb_4bit_quant_type chat_template_path completion_only_loss
    dataset_config dataset_kwargs dataset_name dataset_num_proc dataset_streaming
    dataset_test_split dataset_text_field dataset_train_split datasets dtype eos_token
    eval_packing gradient_checkpointing gradient_checkpointing_use_reentrant ignore_bias_buffers
    learning_rate load_in_4bit load_in_8bit logging_steps lora_alpha lora_dropout
    lora_modules_to_save lora_r lora_target_modules lora_target_parameters lora_task_type
    loss_type lr_scheduler_kwargs max_length max_seq_length model_init_kwargs model_name_or_path
    model_revision packing packing_strategy pad_to_multiple_of pad_token padding_free
    router_aux_loss_coef shuffle_dataset streaming test_split_size torch_dtype
    torch_empty_cache_steps truncation_mode trust_remote_code use_bnb_nested_quant use_dora
    use_liger_kernel use_peft use_rslora
    """
)
"""TRL ``SFTConfig`` (less the TrainingArguments it inherits), ``ModelConfig``, ``ScriptArguments``
and ``DatasetMixtureConfig``: what ``trl sft --config`` parses (``trl/scripts/sft.py``), as the union
of v0.19.0 and v1.9.0 (``trl/trainer/sft_config.py``, ``trl/trainer/model_config.py``,
``trl/scripts/utils.py``; v0.19.0 still had ``max_seq_length`` and ``torch_dtype``)."""


TRL_DPO_ONLY = _keys(
    """
    base_model_attribute_name beta disable_dropout discopop_tau f_alpha_divergence_coef
    f_divergence_type force_use_ref_model generate_during_eval label_pad_token_id
    label_smoothing ld_alpha loss_weights max_completion_length max_prompt_length
    model_adapter_name padding_value precompute_ref_batch_size precompute_ref_log_probs
    ref_adapter_name ref_model_init_kwargs ref_model_mixup_alpha ref_model_sync_steps
    reference_free rpo_alpha sync_ref_model tools use_liger_loss use_logits_to_keep
    use_weighting
    """
)
"""Keys of TRL's ``DPOConfig`` that ``SFTConfig`` lacks (``trl/trainer/dpo_config.py``, v0.19.0 and v1.9.0):
a file that sets one is a preference-training config."""


TRL_DPO_OWN = _keys(
    """
    discopop_tau f_alpha_divergence_coef f_divergence_type force_use_ref_model ld_alpha
    model_adapter_name precompute_ref_batch_size ref_adapter_name ref_model_mixup_alpha
    ref_model_sync_steps reference_free rpo_alpha sync_ref_model use_weighting
    """
)
"""The ``TRL_DPO_ONLY`` keys that ``ORPOConfig``, ``CPOConfig`` and ``KTOConfig`` lack
(v0.19.0 trl/trainer/*_config.py): a file that sets one is run by the DPO trainer."""


TRL_GRPO_ONLY = _keys(
    """
    cache_implementation chat_template_kwargs delta entropy_coef entropy_coef_delta
    entropy_coef_max entropy_coef_min entropy_target epsilon epsilon_high generation_batch_size
    generation_kwargs importance_sampling_level log_completions log_completions_hub_repo
    log_multimodal log_unique_prompts mask_truncated_completions max_tool_calling_iterations
    min_p multi_objective_aggregation num_completions_to_print num_generations
    num_generations_eval num_iterations off_policy_mask_threshold repetition_penalty
    reward_weights sapo_temperature_neg sapo_temperature_pos scale_rewards steps_per_generation
    temperature top_entropy_quantile top_k top_p transformers_continuous_batching_config
    use_adaptive_entropy use_bias_correction_kl use_transformers_continuous_batching
    use_transformers_paged use_vllm vespo_k_neg vespo_k_pos vespo_lambda_neg vespo_lambda_pos
    vllm_enable_sleep_mode vllm_gpu_memory_utilization vllm_group_port
    vllm_guided_decoding_regex vllm_importance_sampling_cap vllm_importance_sampling_clip_max
    vllm_importance_sampling_clip_min vllm_importance_sampling_correction
    vllm_importance_sampling_mode vllm_max_model_length vllm_mode vllm_model_impl
    vllm_server_base_url vllm_server_host vllm_server_port vllm_server_timeout
    vllm_structured_outputs_regex vllm_tensor_parallel_size wandb_log_unique_prompts
    """
)
"""Keys of TRL's ``GRPOConfig`` that neither ``SFTConfig``, ``DPOConfig`` nor TrainingArguments
has (``trl/trainer/grpo_config.py``, v0.19.0 and v1.9.0): a file that sets one is online RL
(sampled completions scored by reward functions), not supervised fine-tuning."""


LLAMAFACTORY = _keys(
    """
    adapter_folder adapter_name_or_path add_special_tokens add_tokens additional_target
    apollo_layerwise apollo_proj apollo_proj_type apollo_rank apollo_scale apollo_scale_front
    apollo_scale_type apollo_target apollo_update_interval asft_alpha audio_sampling_rate
    badam_mask_mode badam_mode badam_start_block badam_switch_interval badam_switch_mode
    badam_update_ratio badam_verbose block_diag_attn buffer_size cache_dir compute_accuracy
    compute_dtype create_new_adapter crop_to_patches cutoff_len data_shared_file_system dataset
    dataset_dir default_system device_map disable_gradient_checkpointing disable_shuffling
    do_sample double_quantization dpo_label_smoothing eaft_alpha early_stopping_steps
    enable_liger_kernel enable_thinking enable_torch_profiler eval_dataset eval_num_beams
    eval_on_each_dataset export_device export_dir export_hub_model_id export_legacy_format
    export_quantization_bit export_quantization_dataset export_quantization_maxlen
    export_quantization_nsamples export_size finetuning_type flash_attn fp8 fp8_backend
    fp8_enable_fsdp_float8_all_gather freeze_extra_modules freeze_language_model
    freeze_multi_modal_projector freeze_trainable_layers freeze_trainable_modules
    freeze_vision_tower galore_layerwise galore_proj_type galore_rank galore_scale galore_target
    galore_update_interval hf_hub_token hyper_parallel_args ignore_pad_token_for_loss
    image_do_pan_and_scan image_max_pixels image_min_pixels include_effective_tokens_per_second
    infer_backend infer_dtype init_special_tokens interleave_probs kt_expert_checkpoint_path
    kt_lora_expert_intermediate_size kt_lora_expert_num kt_use_lora_experts kt_weight_path
    kto_chosen_weight kto_rejected_weight ld_alpha length_penalty lora_alpha lora_dropout
    lora_rank lora_target loraplus_lr_embedding loraplus_lr_ratio low_cpu_mem_usage mask_history
    master_addr master_port max_length max_new_tokens max_samples media_dir mix_strategy
    mixture_of_depths model_max_length model_name_or_path model_revision module_dropout
    moe_aux_loss_coef ms_hub_token neat_packing new_special_tokens_config num_beams
    offload_folder oft_block_size oft_rank oft_target om_hub_token overwrite_cache
    overwrite_output_dir packing pissa_convert pissa_init pissa_iter plot_loss ppo_buffer_size
    ppo_epochs ppo_score_norm ppo_target ppo_whiten_rewards pref_bco_weight pref_beta pref_ftx
    pref_loss preprocessing_batch_size preprocessing_num_workers preserve_thinking
    print_param_status profile_modules profiler_active_steps profiler_output_dir
    profiler_profile_memory profiler_record_shapes profiler_repeat profiler_wait_steps
    profiler_warmup_steps profiler_with_stack pure_bf16 quantization_bit quantization_device_map
    quantization_method quantization_type ray_init_kwargs ray_num_workers ref_model
    ref_model_adapters ref_model_quantization_bit repetition_penalty resize_vocab reward_model
    reward_model_adapters reward_model_quantization_bit reward_model_type rope_scaling
    sglang_config sglang_lora_backend sglang_maxlen sglang_mem_fraction sglang_tp_size
    shift_attn simpo_gamma skip_special_tokens split_special_tokens stage streaming
    swanlab_api_key swanlab_lark_secret swanlab_lark_webhook_url swanlab_logdir swanlab_mode
    swanlab_project swanlab_run_name swanlab_workspace temperature template tokenized_path
    tool_format top_k top_p train_from_scratch train_on_prompt trust_remote_code
    upcast_layernorm upcast_lmhead_output use_adam_mini use_apollo use_asft_loss
    use_audio_in_video use_badam use_dft_loss use_dora use_eaft_loss use_fast_tokenizer
    use_galore use_hyper_parallel use_kt use_kv_cache use_llama_pro use_mca use_muon
    use_reentrant_gc use_rslora use_swanlab use_unsloth use_unsloth_gc use_v1_kernels val_size
    video_fps video_max_pixels video_maxlen video_min_pixels vllm_config vllm_enforce_eager
    vllm_gpu_util vllm_max_lora_rank vllm_maxlen
    """
)
"""LLaMA-Factory v0.9.5 ``ModelArguments``, ``DataArguments``, ``FinetuningArguments``,
``GeneratingArguments`` and its ``TrainingArguments`` additions (``src/llamafactory/hparams/*.py``)."""

LLAMAFACTORY_MAIN = _keys(
    """
    hyper_parallel_cp_size kt_config kt_cpu_activation kt_non_expert_weight_path
    megatron_bridge_args use_megatron_bridge
    """
)
"""What LLaMA-Factory main (ff6d4d1, 2026-08-18) added to the arguments its plain Trainer path
parses: ``FinetuningArguments`` in ``src/llamafactory/hparams/finetuning_args.py``,
``KTransformersArguments`` in ``model_args.py`` and ``kt_config`` in ``parser.py``. The Megatron
keys of ``megatron_bridge_args.py`` are parsed only under ``USE_MEGATRON_BRIDGE=1`` (``parser.py``
``get_train_args``), which trains through Megatron-Core: without it LLaMA-Factory refuses them."""


LLAMAFACTORY_V1 = _keys(
    """
    model custom_chat_template trust_remote_code flash_attn model_class init_config peft_config
    kernel_config quant_config
    train_dataset eval_dataset
    output_dir micro_batch_size global_batch_size cutoff_len learning_rate num_train_epochs
    max_steps max_grad_norm bf16 batching_strategy batching_workers
    enable_activation_checkpointing dist_config dp_size cp_size cp_mode mp_replicate_size
    mp_shard_size dist_timeout optim_config lr_scheduler_config seed full_determinism
    resume_from_checkpoint save_steps save_epochs save_ckpt_as_hf save_total_limit logging_steps
    pref_loss pref_beta pref_ftx simpo_gamma dpo_label_smoothing ld_alpha
    sample_backend max_new_tokens
    """
)
"""LLaMA-Factory's v1 trainer (``llamafactory-cli sft|dpo|rm`` with ``USE_V1=1``), main at
ff6d4d1 (2026-08-18): the fields of ``ModelArguments``, ``DataArguments``,
``TrainingArguments`` and ``SampleArguments`` in ``src/llamafactory/v1/config/{model,data,
training,sample}_args.py``. A v1 file has no ``model_name_or_path``: it names its model
with ``model`` and its plugins as ``*_config`` mappings."""


AXOLOTL = _keys(
    """
    accelerator_config activation_offloading adam_beta1 adam_beta2 adam_beta3 adam_epsilon
    adam_epsilon2 adapter added_tokens_overrides attn_implementation auto_find_batch_size
    auto_resume_from_checkpoints axolotl_config_path base_model base_model_config
    batch_flattening batch_size bench_dataset bench_split bf16 bfloat16 bnb_config_kwargs
    center_rewards_coefficient chat_template chat_template_jinja chat_template_kwargs
    chunked_cross_entropy chunked_cross_entropy_num_chunks cls_model_config comet_api_key
    comet_experiment_config comet_experiment_key comet_mode comet_online comet_project_name
    comet_workspace context_parallel_size cosine_constant_lr_ratio cosine_min_lr_ratio cpo_alpha
    curriculum_sampling dataloader_drop_last dataloader_num_workers dataloader_pin_memory
    dataloader_prefetch_factor dataset_exact_deduplication dataset_keep_in_memory
    dataset_num_proc dataset_prepared_path dataset_processes dataset_shard_idx dataset_shard_num
    datasets ddp ddp_broadcast_buffers ddp_bucket_cap_mb ddp_find_unused_parameters ddp_timeout
    deepcompile deepspeed default_system_message device device_map dion_lr dion_momentum
    dion_rank_fraction dion_rank_multiple_of do_bench_eval do_causal_lm_eval dp_replicate_size
    dp_shard_size dpo_beta dpo_generate_during_eval dpo_label_smoothing dpo_loss_type
    dpo_loss_weights dpo_norm_loss dpo_padding_free dpo_use_liger_kernel dpo_use_logits_to_keep
    dpo_use_weighting dynamic_checkpoint eaft_alpha eaft_k eager_attention
    early_stopping_patience ebft embedding_lr embedding_lr_scale embeddings_skip_upcast
    eot_tokens eval_batch_size eval_causal_lm_metrics eval_max_new_tokens eval_sample_packing
    eval_sequence_len eval_steps eval_strategy eval_table_size evals_per_epoch
    evaluation_strategy excess_length_strategy experimental_skip_move_to_device
    experts_implementation fix_untrained_tokens flash_attention flash_attn_cross_entropy
    flash_attn_d512 flash_attn_fuse_mlp flash_attn_rms_norm flash_optimum flex_attention
    flex_attn_compile_kwargs float16 float32 fp16 fp32_norm_classes fp32_norms fp8
    fp8_enable_fsdp_float8_all_gather freeze_mm_modules fsdp fsdp_config
    fsdp_final_state_dict_type fsdp_version fused_attn_kernel gc_collect_steps gc_steps
    gemma4_hybrid_attn_impl generate_samples generation_do_sample generation_max_new_tokens
    generation_prompt_ratio generation_temperature generation_top_k generation_top_p gptq
    gpu_memory_limit gradient_accumulation_steps gradient_checkpointing
    gradient_checkpointing_kwargs gradio_max_new_tokens gradio_server_name gradio_server_port
    gradio_share gradio_temperature gradio_title greater_is_better group_by_length
    heads_k_stride hf_mlflow_log_artifacts hf_use_auth_token hub_model_id hub_revision
    hub_strategy image_resize_algorithm image_size include_tkps include_tokens_per_second
    is_falcon_derived_model is_llama_derived_model is_mistral_derived_model is_preprocess
    is_qwen_derived_model jagged_restart_anneal_steps jagged_restart_steps
    jagged_restart_warmup_steps kto_desirable_weight kto_undesirable_weight large_head_attention
    layer_offloading learning_rate lisa_layers_attribute lisa_n_layers lisa_step_interval
    llama4_linearized_experts load_best_model_at_end load_in_4bit load_in_8bit local_rank
    logging_steps lora_alpha lora_alpha_pattern lora_dropout lora_embedding_kernel
    lora_fan_in_fan_out lora_mlp_kernel lora_model_dir lora_modules_to_save lora_o_kernel
    lora_on_cpu lora_qkv_kernel lora_r lora_rank_pattern lora_target_linear lora_target_modules
    lora_target_parameters loraplus_lr_embedding loraplus_lr_ratio loss_watchdog_patience
    loss_watchdog_threshold low_cpu_mem_usage lr_div_factor lr_groups lr_quadratic_warmup
    lr_scheduler lr_scheduler_kwargs max_grad_norm max_memory max_packed_sequence_len
    max_prompt_len max_steps mean_resizing_embeddings merge_lora merge_method
    metric_for_best_model micro_batch_size min_sample_len mlflow_experiment_name mlflow_run_name
    mlflow_tracking_uri model_quantization_config model_quantization_config_kwargs
    multipack_real_batches neftune_noise_alpha noisy_embedding_alpha num_dataset_shards_to_save
    num_epochs num_generation_samples num_labels optim_args optim_target_modules optimizer
    orpo_alpha otel_metrics_host otel_metrics_port output_dir overrides_of_model_config
    overrides_of_model_kwargs pad_to_multiple_of pad_to_sequence_len peft
    peft_autocast_adapter_dtype peft_ensure_weight_tying peft_init_lora_weights
    peft_layer_replication peft_layers_pattern peft_layers_to_transform
    peft_trainable_token_indices peft_use_dora peft_use_rslora plugins pose_max_context_len
    pose_num_chunks pose_split_on_token_ids precompute_ref_log_probs preprocess_iterable
    pretrain_multipack_attn pretrain_multipack_buffer_size pretraining_dataset
    pretraining_sample_concatenation process_reward_model processor_kwargs processor_type
    profiler_steps profiler_steps_start push_dataset_to_hub qat qgalore_cos_threshold
    qgalore_gamma_proj qgalore_proj_bits qgalore_proj_group_size qgalore_proj_quant
    qgalore_proj_type qgalore_queue_size qgalore_rank qgalore_scale qgalore_update_proj_gap
    qlora_sharded_model_loading quantization quantize_moe_experts ray_num_workers ray_run_name
    reinit_weights relora relora_cpu_offload relora_prune_method relora_prune_ratio
    remove_unused_columns resize_token_embeddings_to_32x resources_per_worker
    resume_from_checkpoint revision_of_model reward_model ring_attn_func rl rl_beta
    role_boundaries rope_scaling rpo_alpha s2_attention sage_attention sample_packing
    sample_packing_bin_size sample_packing_eff_est sample_packing_group_size
    sample_packing_mp_start_method sample_packing_sequentially save_first_step save_only_model
    save_safetensors save_steps save_strategy save_total_limit saves_per_epoch scaling_softmax
    scaling_softmax_bias scaling_softmax_factor sdp_attention sdpa_varlen seed
    selective_checkpointing sequence_len sequence_parallel_degree shrink_embeddings
    shuffle_before_merging_datasets shuffle_merged_datasets simpo_gamma skip_prepare_dataset
    special_tokens streaming streaming_multipack_buffer_size strict tensor_parallel_size
    test_datasets tf32 tiled_mlp tiled_mlp_num_shards tiled_mlp_use_original_mlp
    tokenizer_config tokenizer_legacy tokenizer_save_jinja_files tokenizer_type
    tokenizer_use_fast tokenizer_use_mistral_common tokens torch_compile torch_compile_backend
    torch_compile_mode torch_compile_options torch_empty_cache_steps torchdistx_path
    total_num_tokens total_supervised_tokens trackio_project_name trackio_run_name
    trackio_space_id train_on_inputs trainer_cls trl trust_remote_code type_of_model
    unfrozen_parameters use_comet use_eaft use_kernels use_mlflow use_onebitllms
    use_otel_metrics use_pose use_ray use_tensorboard use_trackio use_wandb val_set_size vllm
    wandb_entity wandb_log_model wandb_mode wandb_name wandb_project wandb_run_id wandb_watch
    warmup_ratio warmup_steps weight_decay world_size xformers_attention
    """
)
"""axolotl v0.18.0 ``AxolotlInputConfig`` and its bases (``src/axolotl/utils/schemas/*.py``)."""


AXOLOTL_PLUGINS = _keys(
    """
    api_key backend base_url cut_cross_entropy dense_mixer diffusion dsv4_bf16_all
    dsv4_fp4_grouped_mode dsv4_fp8_lora_kernel dsv4_fp8_nonexpert_mode
    dsv4_shared_mlp_lora_kernel eps expert_backend expert_parallel_backend
    expert_parallel_fallback_on_unsupported expert_parallel_num_nvl_bytes
    expert_parallel_num_rdma_bytes expert_parallel_size expert_parallel_token_capacity
    future_timeout gemma4_fp8_nonexpert gemma4_nf4_nonexpert generation_interval
    generation_max_length generation_steps grokfast_alpha grokfast_lamb hatchery
    importance_weighting kd_alpha kd_beta kd_ce_alpha kd_normalize_topk kd_online_server
    kd_online_server_base_url kd_online_timeout kd_online_topk kd_temperature kd_temperature_min
    kd_trainer liger_cross_entropy liger_fused_linear_cross_entropy liger_glu_activation
    liger_layer_norm liger_rms_norm liger_rms_norm_gated liger_rope liger_swiglu
    liger_use_token_scaling llmcompressor lm_eval_batch_size lm_eval_model lm_eval_post_train
    lm_eval_tasks lora_rank loss_fn loss_fn_config mask_token_id mask_token_str max_mask_ratio
    max_sample_tokens min_mask_ratio moe_bnb_fast moe_dequant_chunk_size moe_grouped_backend
    mora mora_type nemo_gym_auto_clone nemo_gym_auto_start nemo_gym_config_paths
    nemo_gym_datasets nemo_gym_dir nemo_gym_enabled nemo_gym_head_port nemo_gym_max_turns
    nemo_gym_model_name nemo_gym_multi_turn nemo_gym_run_timeout nemo_gym_server_timeout
    nemo_gym_verify_timeout noise_schedule nonexpert_quantization num_diffusion_steps
    num_samples nvfp4_merge_aware nvfp4_merge_aware_start_step pipeline project_id recipe
    reward_funcs sample_temperature save_compressed save_name_prefix spectrum_model_name
    spectrum_top_fraction swanlab_api_host swanlab_api_key swanlab_completion_log_interval
    swanlab_completion_max_buffer swanlab_description swanlab_experiment_name
    swanlab_lark_secret swanlab_lark_webhook_url swanlab_log_completions swanlab_log_model
    swanlab_mode swanlab_project swanlab_web_host swanlab_workspace train_attn train_mlp
    train_unembed use_dsv4_kernels use_glm_dsa_kernels use_mora use_scattermoe use_sonicmoe
    use_swanlab
    """
)
"""Keys axolotl v0.18.0 plugins add (``src/axolotl/integrations/*/args.py``: liger, spectrum, cut
cross entropy, kernels, …)."""


FIREFLY = _keys(
    """
    beta eval_file lora_alpha lora_dropout lora_rank max_prompt_length max_seq_length
    model_name_or_path task_type template_name tokenize_num_workers train_file train_mode
    use_unsloth
    """
)
"""Firefly ``CustomizedArguments`` (``component/argument.py`` at commit e22b406ee440, the repository's
newest; ``train.py`` parses them with TrainingArguments by ``HfArgumentParser.parse_json_file``)."""


OPEN_INSTRUCT = _keys(
    """
    add_bos additional_model_arguments cache_dataset_only chat_template_name checkpointing_steps
    clean_checkpoints_at_end clip_grad_norm config_name dataset_cache_mode dataset_config_hash
    dataset_config_name dataset_local_cache_dir dataset_mix_dir dataset_mixer dataset_mixer_list
    dataset_mixer_list_splits dataset_name dataset_skip_cache dataset_target_columns
    dataset_transform_fn do_not_randomize_output_dir exp_name final_lr_ratio fused_optimizer
    get_tokenizer_fn gradient_accumulation_steps gradient_checkpointing ground_truths_key
    gs_bucket_path hf_entity hf_metadata_dataset hf_repo_id hf_repo_revision hf_repo_url
    keep_last_n_checkpoints learning_rate load_balancing_loss load_balancing_weight
    logging_steps lora_alpha lora_dropout lora_rank low_cpu_mem_usage lr_scheduler_type
    max_seq_length max_train_samples max_train_steps model_name_or_path model_revision
    num_train_epochs oe_eval_max_length oe_eval_tasks output_dir overwrite_cache packing
    per_device_train_batch_size preprocessing_num_workers push_to_hub report_to
    resume_from_checkpoint save_to_hub seed sequence_parallel_size sft_messages_key
    sync_each_batch timeout tokenizer_files_hash tokenizer_name tokenizer_name_or_path
    tokenizer_revision trust_remote_code try_auto_save_to_beaker try_launch_beaker_eval_jobs
    use_8bit_optimizer use_fast use_liger_kernel use_lora use_qlora use_slow_tokenizer verbose
    wandb_entity wandb_project_name warmup_ratio weight_decay with_tracking
    """
)
"""open-instruct v0.3.0 ``FlatArguments`` (``open_instruct/finetune.py``) and ``TokenizerConfig``
(``open_instruct/dataset_transformation.py``)."""


AXOLOTL_KEYS = Vocabulary(
    "axolotl",
    AXOLOTL | AXOLOTL_PLUGINS,
    "axolotl v0.18.0 src/axolotl/utils/schemas/config.py (AxolotlInputConfig, a pydantic model "
    "whose default extra='ignore' drops unknown keys) and src/axolotl/integrations/*/args.py",
    strict=False,
)
LLAMAFACTORY_KEYS = Vocabulary(
    "LLaMA-Factory",
    LLAMAFACTORY | LLAMAFACTORY_MAIN | TRAINING_ARGUMENTS | SEQ2SEQ_TRAINING_ARGUMENTS,
    "LLaMA-Factory v0.9.5 (and main at ff6d4d1) src/llamafactory/hparams/*.py; parser.py "
    "parses them with "
    "allow_extra_keys=False unless ALLOW_EXTRA_ARGS is set",
    strict=True,
)
LLAMAFACTORY_V1_KEYS = Vocabulary(
    "LLaMA-Factory v1",
    LLAMAFACTORY_V1,
    "LLaMA-Factory main at ff6d4d1 src/llamafactory/v1/config/*_args.py; arg_parser.py "
    "get_args parses them with allow_extra_keys=False unless ALLOW_EXTRA_KEYS is set",
    strict=True,
)
TRL_KEYS = Vocabulary(
    "TRL",
    TRL_SFT | TRAINING_ARGUMENTS | {"env"},
    "TRL v0.19.0-v1.9.0 trl/trainer/sft_config.py, model_config.py, trl/scripts/utils.py "
    "(`trl sft` ignores keys it does not know: parse_args_and_config(fail_with_unknown_args=False))",
    strict=False,
)
TRAINER_KEYS = Vocabulary(
    "TrainingArguments",
    TRAINING_ARGUMENTS,
    "transformers v4.57.6 / v5.25.0 src/transformers/training_args.py (a script's own argument "
    "dataclasses may add more keys)",
    strict=False,
)
FIREFLY_KEYS = Vocabulary(
    "Firefly",
    FIREFLY | TRAINING_ARGUMENTS,
    "Firefly e22b406ee440 component/argument.py and train.py (HfArgumentParser.parse_json_file, "
    "which refuses unknown keys)",
    strict=True,
)

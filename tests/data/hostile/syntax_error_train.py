from transformers import TrainingArguments

args = TrainingArguments(
    output_dir="out",
    per_device_train_batch_size=4,
    bf16=True
    learning_rate=2e-4,
)

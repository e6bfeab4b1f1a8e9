//! The chat template a model was trained with: read from the GGUF's `tokenizer.chat_template`
//! when it is one of the families known here, else the family its special tokens say.

use anyhow::bail;

/// How a system and a user message become the model's prompt, ending where the assistant's
/// answer begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// ChatML (`<|im_start|>role\n...<|im_end|>`): SmolLM2, Qwen, many fine-tunes.
    ChatMl,
    /// Llama 3 (`<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`).
    Llama3,
    /// Zephyr / TinyLlama (`<|system|>\n...</s>`).
    Zephyr,
}

impl ChatTemplate {
    /// The template of a model: the family its Jinja template (when the file has one) or its
    /// vocabulary shows. A model of no known family is refused, never prompted in a format it
    /// was not trained on.
    pub fn of(jinja: Option<&str>, tokenizer: &tokenizers::Tokenizer) -> anyhow::Result<Self> {
        let has = |t: &str| tokenizer.token_to_id(t).is_some();
        let says = |t: &str| jinja.is_some_and(|j| j.contains(t));
        if says("<|im_start|>") || (jinja.is_none() && has("<|im_start|>")) {
            return Ok(ChatTemplate::ChatMl);
        }
        if says("<|start_header_id|>") || (jinja.is_none() && has("<|start_header_id|>")) {
            return Ok(ChatTemplate::Llama3);
        }
        if says("<|system|>") || (jinja.is_none() && has("<|system|>")) {
            return Ok(ChatTemplate::Zephyr);
        }
        bail!("the model's chat template is of no family known here (ChatML, Llama 3, Zephyr)")
    }

    /// The prompt for `system` and `user`, ending with the assistant's turn opened.
    pub fn render(self, system: &str, user: &str) -> String {
        match self {
            ChatTemplate::ChatMl => format!(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
            ),
            ChatTemplate::Llama3 => format!(
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
            ChatTemplate::Zephyr => {
                format!("<|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_opens_the_assistants_turn_after_both_messages() {
        let p = ChatTemplate::ChatMl.render("S", "U");
        assert_eq!(
            p,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(ChatTemplate::Llama3.render("S", "U").ends_with("assistant<|end_header_id|>\n\n"));
    }
}

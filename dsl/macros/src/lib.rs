//! ssmc-macros: `ssm!`, a layer declared in Rust source and checked at compile time.
//!
//! The macro parses with the same grammar as `.ssm` files, checks the spec, and expands to a
//! struct named after the layer; every mistake becomes a compile error at the offending token.
//! See the `ssmc` crate for examples.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use ssmc_dsl::ast::{Layer, Stmt};

/// Declares a layer. Expands to `pub struct NAME` with `new()`, `graph()`, the canonical
/// `SOURCE`, the `INPUTS` and `OUTPUTS` names, and a `NAMEInputs<T>` struct with one field per
/// input, so a misspelt input is a compile error.
///
/// ```
/// ssmc::ssm! {
///     layer Decay {
///         dims len;
///         input x: [len];
///         param a: [];
///         output h = scan(a, x, len);
///     }
/// }
/// let layer = Decay::new();
/// assert_eq!(Decay::INPUTS, ["x", "a"]);
/// assert_eq!(layer.graph().outputs()[0].name, "h");
/// let named = DecayInputs { x: 1, a: 2 }.into_named();
/// assert_eq!(named, [("x", 1), ("a", 2)]);
/// ```
#[proc_macro]
pub fn ssm(input: TokenStream) -> TokenStream {
    let tokens: proc_macro2::TokenStream = input.into();
    match ssmc_dsl::parse_tokens(tokens.clone()) {
        Ok((layer, graph)) => expand(&layer, &graph).into(),
        Err(diags) => {
            let errors = diags.errors.iter().map(|e| {
                let msg = &e.message;
                quote_spanned!(e.span=> ::core::compile_error!(#msg);)
            });
            let stub = stub_for(tokens);
            quote!(#(#errors)* #stub).into()
        }
    }
}

/// After errors: a bare struct with the layer's name (if it can be found), so code that uses the
/// layer does not add a second wave of "cannot find type" errors.
fn stub_for(tokens: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut it = tokens.into_iter();
    let (Some(proc_macro2::TokenTree::Ident(kw)), Some(proc_macro2::TokenTree::Ident(name))) = (it.next(), it.next())
    else {
        return quote!();
    };
    if kw != "layer" {
        return quote!();
    }
    quote! {
        #[allow(dead_code)]
        pub struct #name;
    }
}

fn expand(layer: &Layer, graph: &ssmc_dsl::ir::Graph) -> proc_macro2::TokenStream {
    let name = &layer.name;
    let inputs_name = format_ident!("{}Inputs", name);
    let source = ssmc_dsl::ir::print::print(graph);
    match ssmc_dsl::parse_str(&source) {
        Ok(back) if back.same_as(graph) => {}
        _ => {
            let msg = format!("internal error in ssm!: the canonical text of `{name}` does not parse back:\n{source}");
            return quote_spanned!(name.span()=> ::core::compile_error!(#msg););
        }
    }
    let decls: Vec<_> = layer
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Decl(d) => Some(d.name.clone()),
            _ => None,
        })
        .collect();
    let input_strs: Vec<String> = decls.iter().map(|d| d.to_string()).collect();
    let output_strs: Vec<String> = graph.outputs().iter().map(|o| o.name.clone()).collect();
    let n_in = decls.len();
    let n_out = output_strs.len();
    let doc = format!("The `{name}` layer, declared with `ssm!`:\n\n```text\n{source}```");
    let inputs_doc = format!("One value per input of [`{name}`], in declaration order.");
    let call_site = Span::call_site();
    let fields = decls.iter().map(|d| {
        let d = proc_macro2::Ident::new(&d.to_string(), call_site);
        quote!(#[allow(non_snake_case, missing_docs)] pub #d: T,)
    });
    let pairs = decls.iter().map(|d| {
        let s = d.to_string();
        let d = proc_macro2::Ident::new(&s, call_site);
        quote!((#s, self.#d),)
    });
    quote! {
        #[doc = #doc]
        #[derive(Clone, Debug)]
        pub struct #name {
            graph: ::ssmc::ir::Graph,
        }

        impl #name {
            /// The canonical `.ssm` text of this layer.
            pub const SOURCE: &'static str = #source;
            /// The declared inputs and params, in declaration order.
            pub const INPUTS: [&'static str; #n_in] = [#(#input_strs),*];
            /// The outputs, in declaration order.
            pub const OUTPUTS: [&'static str; #n_out] = [#(#output_strs),*];

            /// Builds the layer's graph (checked when the macro expanded).
            pub fn new() -> Self {
                let graph = ::ssmc::dsl::parse_str(Self::SOURCE)
                    .expect("ssm! checked this spec at compile time");
                #name { graph }
            }

            /// The layer's IR.
            pub fn graph(&self) -> &::ssmc::ir::Graph {
                &self.graph
            }

            /// The layer as a [`::ssmc::Layer`], to evaluate or compile.
            pub fn layer(&self) -> ::ssmc::Layer {
                ::ssmc::Layer::from_graph(self.graph.clone()).expect("ssm! checked this spec at compile time")
            }
        }

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self::new()
            }
        }

        #[doc = #inputs_doc]
        #[derive(Clone, Debug)]
        pub struct #inputs_name<T> {
            #(#fields)*
        }

        impl<T> #inputs_name<T> {
            /// `(name, value)` pairs in declaration order.
            pub fn into_named(self) -> [(&'static str, T); #n_in] {
                [#(#pairs)*]
            }
        }
    }
}

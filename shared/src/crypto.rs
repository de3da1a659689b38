//! Cryptographic building blocks of the identity service, all from well-kept crates
//! (aws-lc-rs, argon2, totp-rs): random secrets, hashes, constant-time comparison, password
//! hashing, AES-256-GCM for envelope encryption, P-256 signing keys and TOTP.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// One of OWASP's equivalent argon2id settings: 12 MiB, 3 iterations, 1 lane (the 19 MiB, t=2
/// one put api-auth's peak RSS over the 32 MB budget; README "Performance").
pub const ARGON2_MEMORY_KIB: u32 = 12 * 1024;
pub const ARGON2_ITERATIONS: u32 = 3;
pub const ARGON2_LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("crypto: {0}")]
pub struct CryptoError(pub String);

fn err(e: impl std::fmt::Display) -> CryptoError {
    CryptoError(e.to_string())
}

pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| err("no randomness"))?;
    Ok(buf)
}

/// A random secret of 256 bits, base64url without padding (43 characters, no `.`).
pub fn random_secret() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// SHA-256 in lower-case hex: how high-entropy secrets (refresh tokens, API keys, emailed
/// tokens, recovery codes) are stored.
pub fn sha256_hex(data: &str) -> String {
    Sha256::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

fn argon2() -> Result<Argon2<'static>, CryptoError> {
    let params =
        Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None).map_err(err)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// An argon2id PHC string for `password`, with a fresh 128-bit salt.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes(16)?).map_err(err)?;
    Ok(argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(err)?
        .to_string())
}

/// Whether `password` matches `phc`. The parameters are read from the hash, so hashes made
/// with older parameters still verify.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// A hash to verify against when the account does not exist, so that an unknown email takes
/// as long as a wrong password.
pub fn decoy_password_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing").unwrap_or_default())
}

/// AES-256-GCM with `aad` bound in: (ciphertext with tag, nonce).
pub fn seal(key: &[u8], plaintext: &[u8], aad: &str) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| err("bad key"))?);
    let nonce_bytes = random_bytes(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| err("bad nonce"))?;
    let mut data = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| err("seal failed"))?;
    Ok((data, nonce_bytes))
}

pub fn open(
    key: &[u8],
    ciphertext: &[u8],
    nonce: &[u8],
    aad: &str,
) -> Result<Vec<u8>, CryptoError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| err("bad key"))?);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| err("bad nonce"))?;
    let mut data = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
        .map_err(|_| err("ciphertext does not open with this key"))?;
    Ok(plain.to_vec())
}

/// [`seal`] as one base64 text: the nonce, then the ciphertext with its tag (how sealed secrets
/// are stored: TOTP secrets, webhook signing secrets).
pub fn seal_b64(key: &[u8], plaintext: &[u8], aad: &str) -> Result<String, CryptoError> {
    use base64::engine::general_purpose::STANDARD;
    let (ciphertext, nonce) = seal(key, plaintext, aad)?;
    Ok(STANDARD.encode([nonce, ciphertext].concat()))
}

/// Opens what [`seal_b64`] made.
pub fn open_b64(key: &[u8], sealed: &str, aad: &str) -> Result<Vec<u8>, CryptoError> {
    use base64::engine::general_purpose::STANDARD;
    let bytes = STANDARD.decode(sealed).map_err(err)?;
    if bytes.len() <= NONCE_LEN {
        return Err(err("sealed secret is too short"));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    open(key, ciphertext, nonce, aad)
}

/// HMAC-SHA256 of `data` under `key`, hex.
pub fn hmac_sha256_hex(key: &[u8], data: &str) -> String {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new P-256 key pair: (PKCS#8 private key, x, y) with the coordinates base64url.
pub fn generate_p256() -> Result<(Vec<u8>, String, String), CryptoError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| err("key generation failed"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| err("key generation failed"))?;
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return Err(err("unexpected public key encoding"));
    }
    Ok((
        pkcs8.as_ref().to_vec(),
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    ))
}

/// TOTP (RFC 6238): SHA-1, 6 digits, 30 s steps, one step of skew either way.
pub mod totp {
    use super::{CryptoError, err, random_bytes};
    use totp_rs::{Algorithm, Secret, TOTP};

    pub const STEP_SECONDS: u64 = 30;
    pub const DIGITS: usize = 6;

    fn totp(secret_b32: &str, issuer: &str, account: &str) -> Result<TOTP, CryptoError> {
        let bytes = Secret::Encoded(secret_b32.to_string())
            .to_bytes()
            .map_err(|e| err(format!("{e:?}")))?;
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECONDS,
            bytes,
            Some(issuer.to_string()),
            account.to_string(),
        )
        .map_err(err)
    }

    /// A new 160-bit secret, base32.
    pub fn new_secret() -> Result<String, CryptoError> {
        Ok(Secret::Raw(random_bytes(20)?).to_encoded().to_string())
    }

    /// The `otpauth://` URI an authenticator app reads (usually as a QR code).
    pub fn uri(secret_b32: &str, issuer: &str, account: &str) -> Result<String, CryptoError> {
        Ok(totp(secret_b32, issuer, account)?.get_url())
    }

    /// The code for `unix_seconds` (tests and clients).
    pub fn code(secret_b32: &str, unix_seconds: u64) -> Result<String, CryptoError> {
        Ok(totp(secret_b32, "x", "x")?.generate(unix_seconds))
    }

    /// The time step `code` is good for at `unix_seconds` (current, previous or next), if any.
    /// Callers refuse a step not above the last one accepted, so each code works once.
    pub fn matching_step(secret_b32: &str, code: &str, unix_seconds: u64) -> Option<u64> {
        let t = totp(secret_b32, "x", "x").ok()?;
        let now = unix_seconds / STEP_SECONDS;
        [now.saturating_sub(1), now, now + 1]
            .into_iter()
            .find(|step| super::constant_time_eq(&t.generate(step * STEP_SECONDS), code))
    }
}

/// ECDSA P-256 signatures in the fixed 64-byte form (`r || s`, big-endian). A signature and
/// its twin with `s` replaced by `n - s` both verify; only the low-S one is accepted, so a token
/// has one valid signature and cannot be altered into another valid token.
pub mod ecdsa {
    /// Half the order of P-256, rounded down: `s` above it is "high".
    const HALF_ORDER: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31,
        0x92, 0xa8,
    ];
    /// The order of P-256.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// Whether `signature` is 64 bytes with `s <= n / 2`.
    pub fn is_low_s(signature: &[u8]) -> bool {
        signature.len() == 64 && signature[32..] <= HALF_ORDER[..]
    }

    /// Replaces a high `s` by `n - s` (the same signature's low-S twin); other input is left
    /// as it is.
    pub fn normalize_s(signature: &mut [u8]) {
        if signature.len() == 64 && !is_low_s(signature) {
            twin(signature);
        }
    }

    /// Replaces `s` by `n - s`: the other signature of the same message and key (for a
    /// 64-byte signature with `0 < s < n`).
    pub fn twin(signature: &mut [u8]) {
        if signature.len() != 64 {
            return;
        }
        let s = &mut signature[32..];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            s[i] = d as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_high_s_signature_becomes_its_low_s_twin_and_both_verify() {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
            UnparsedPublicKey,
        };
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        let (mut high, mut low) = (0, 0);
        for i in 0..64 {
            let message = format!("message {i}");
            let signature = pair.sign(&rng, message.as_bytes()).unwrap();
            let mut normalized = signature.as_ref().to_vec();
            ecdsa::normalize_s(&mut normalized);
            assert!(ecdsa::is_low_s(&normalized));
            public.verify(message.as_bytes(), &normalized).unwrap();
            if ecdsa::is_low_s(signature.as_ref()) {
                low += 1;
                assert_eq!(normalized, signature.as_ref());
            } else {
                high += 1;
                assert_ne!(normalized, signature.as_ref());
                public
                    .verify(message.as_bytes(), signature.as_ref())
                    .unwrap();
            }
        }
        // About half of all signatures are high-S: 64 of one kind would be a broken test.
        assert!(high > 0 && low > 0, "high {high}, low {low}");
        assert!(!ecdsa::is_low_s(&[0u8; 63]));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("correct horse battery stapl", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("x", decoy_password_hash()));
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = random_bytes(32).unwrap();
        let (c, n) = seal(&key, b"secret", "kid-1").unwrap();
        assert_eq!(open(&key, &c, &n, "kid-1").unwrap(), b"secret");
        assert!(open(&key, &c, &n, "kid-2").is_err());
        assert!(open(&random_bytes(32).unwrap(), &c, &n, "kid-1").is_err());
    }

    #[test]
    fn totp_codes_match_their_step_only() {
        let s = totp::new_secret().unwrap();
        let t = 1_800_000_000u64;
        let code = totp::code(&s, t).unwrap();
        assert_eq!(totp::matching_step(&s, &code, t), Some(t / 30));
        assert_eq!(totp::matching_step(&s, &code, t + 30), Some(t / 30));
        assert_eq!(totp::matching_step(&s, &code, t + 90), None);
        assert!(
            totp::uri(&s, "DWC", "ann@example.com")
                .unwrap()
                .starts_with("otpauth://totp/")
        );
    }

    #[test]
    fn secrets_are_distinct_and_hashes_stable() {
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(sha256_hex("abc").len(), 64);
        assert!(constant_time_eq("a", "a") && !constant_time_eq("a", "b"));
    }
}
